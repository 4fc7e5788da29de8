package auth_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard/auth"
)

// equaler is implemented by every public key type in the standard library.
type equaler interface{ Equal(crypto.PublicKey) bool }

func TestParsePublicKeyPEM(t *testing.T) {
	k := keys()
	pkixPEM := func(pub crypto.PublicKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	cert := func() []byte {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "switchboard test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec256.PublicKey, k.ec256)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ed)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	paramsPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})

	tests := []struct {
		name    string
		pem     []byte
		want    crypto.PublicKey // nil means an error is expected
		wantErr string
	}{
		{name: "RSA PKIX", pem: pkixPEM(&k.rsa.PublicKey), want: &k.rsa.PublicKey},
		{name: "RSA PKCS1", pem: pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}), want: &k.rsa.PublicKey},
		{name: "ECDSA P-256", pem: pkixPEM(&k.ec256.PublicKey), want: &k.ec256.PublicKey},
		{name: "ECDSA P-521", pem: pkixPEM(&k.ec521.PublicKey), want: &k.ec521.PublicKey},
		{name: "Ed25519", pem: pkixPEM(k.ed.Public()), want: k.ed.Public()},
		{name: "certificate", pem: cert(), want: &k.ec256.PublicKey},
		{name: "leading text and other block", pem: append([]byte("issuer key:\n"), append(paramsPEM, pkixPEM(k.ed.Public())...)...), want: k.ed.Public()},
		{name: "empty", pem: nil, wantErr: "no PEM"},
		{name: "garbage", pem: []byte("this is not PEM at all"), wantErr: "no PEM"},
		{name: "private key", pem: privPEM, wantErr: "PRIVATE KEY"},
		{name: "corrupt public key", pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}), wantErr: "PUBLIC KEY"},
		{name: "corrupt certificate", pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), wantErr: "CERTIFICATE"},
		{name: "X25519", pem: pkixPEM(x25519.PublicKey()), wantErr: "unsupported"},
		{name: "P-224", pem: pkixPEM(&p224.PublicKey), wantErr: "P-224"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.ParsePublicKeyPEM(tt.pem)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParsePublicKeyPEM = %T, want error", got)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			if !tt.want.(equaler).Equal(got) {
				t.Errorf("ParsePublicKeyPEM = %T %v, want %v", got, got, tt.want)
			}
			// Whatever ParsePublicKeyPEM returns must be accepted by NewJWT.
			if _, err := auth.NewJWT(auth.JWTConfig{PublicKeys: []crypto.PublicKey{got}}); err != nil {
				t.Errorf("NewJWT rejects parsed key: %v", err)
			}
		})
	}
}
