package auth

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParsePublicKeyPEM parses a public key for [JWTConfig.PublicKeys] from PEM
// text. It accepts a "PUBLIC KEY" block (PKIX, holding an RSA, ECDSA or
// Ed25519 key), an "RSA PUBLIC KEY" block (PKCS #1), or a "CERTIFICATE"
// block, whose public key is returned. Blocks of other types before the
// first of these are skipped. The result is an *rsa.PublicKey, an
// *ecdsa.PublicKey on P-256, P-384 or P-521, or an ed25519.PublicKey; any
// other key is an error.
func ParsePublicKeyPEM(pemBytes []byte) (crypto.PublicKey, error) {
	var skipped []string
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}

		var (
			key crypto.PublicKey
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				key = cert.PublicKey
			}
		default:
			skipped = append(skipped, block.Type)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth: parsing PEM %q block: %w", block.Type, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, fmt.Errorf("auth: PEM %q block: %w", block.Type, err)
		}
		return key, nil
	}

	if len(skipped) > 0 {
		return nil, fmt.Errorf("auth: no public key in PEM data (found %s; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)",
			strings.Join(skipped, ", "))
	}
	return nil, errors.New("auth: no PEM data found")
}
