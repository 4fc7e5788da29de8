package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// HTTPS and wss:// with --tls-cert and --tls-key. The server terminates TLS itself; behind
// a TLS-terminating proxy these flags stay unset (docs/server.md, "TLS").

// tlsFlags registers the flags of this file in the current section of c.
func tlsFlags(c *cli, o *options) {
	c.stringVar(&o.TLSCert, "tls-cert", envName("tls-cert"),
		"PEM `file` with the server certificate (then any intermediates) to serve HTTPS and "+
			"wss:// instead of HTTP and ws://; needs --tls-key. TLS 1.2 or later")
	c.stringVar(&o.TLSKey, "tls-key", envName("tls-key"),
		"PEM `file` with the private key of --tls-cert")
}

// checkTLSOptions refuses one of --tls-cert and --tls-key without the other.
func checkTLSOptions(o options) error {
	switch {
	case o.TLSCert != "" && o.TLSKey == "":
		return usageError{errors.New("--tls-cert needs --tls-key (both or neither)")}
	case o.TLSCert == "" && o.TLSKey != "":
		return usageError{errors.New("--tls-key needs --tls-cert (both or neither)")}
	}
	return nil
}

// serverTLS is the TLS setup of a server that terminates TLS itself.
type serverTLS struct {
	config *tls.Config
	leaf   *x509.Certificate
	// selfSigned reports a certificate signed by its own key, which clients do not trust
	// unless told to (curl -k, a browser exception).
	selfSigned bool
}

// loadTLS reads and checks the certificate and key of --tls-cert and --tls-key. It
// returns nil, nil when TLS is off. An unreadable or malformed file, a key that does not
// match the certificate, or an expired certificate is an error; a certificate not valid
// yet is only logged (the clock may be behind).
func loadTLS(o options, log *slog.Logger, now time.Time) (*serverTLS, error) {
	if o.TLSCert == "" {
		return nil, nil
	}
	certPEM, err := os.ReadFile(o.TLSCert)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(o.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-key: %w", err)
	}
	// The certificate file first, so that its errors name it; what X509KeyPair then
	// refuses is the key, or the pair.
	leaf, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %w", o.TLSCert, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("--tls-key %s (for --tls-cert %s): %w", o.TLSKey, o.TLSCert, err)
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("--tls-cert %s: the certificate expired on %s",
			o.TLSCert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		log.Warn("the TLS certificate is not valid yet; clients will refuse it until then",
			"not_before", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &serverTLS{
		config: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{pair},
		},
		leaf: leaf,
		selfSigned: bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
			leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil,
	}, nil
}

// parseCertPEM returns the first certificate of a PEM file and checks that every
// CERTIFICATE block of the file parses.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if strings.HasSuffix(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %d is a %s: the key goes in --tls-key", n, block.Type)
			}
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		if leaf == nil {
			leaf = c
		}
	}
	if leaf == nil {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return leaf, nil
}
