package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/switchboardrt/switchboard/auth"
)

// testNow is the fixed clock used by the authenticator tests.
var testNow = time.Date(2030, time.March, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// testKeys holds keys generated once per test binary.
type testKeys struct {
	hmac                []byte
	rsa, rsa2, rsa3     *rsa.PrivateKey
	ec256, ec384, ec521 *ecdsa.PrivateKey
	ed, ed2             ed25519.PrivateKey
}

var keys = sync.OnceValue(func() *testKeys {
	mustRSA := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	mustEC := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	mustEd := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		panic(err)
	}
	return &testKeys{
		hmac:  secret,
		rsa:   mustRSA(),
		rsa2:  mustRSA(),
		rsa3:  mustRSA(),
		ec256: mustEC(elliptic.P256()),
		ec384: mustEC(elliptic.P384()),
		ec521: mustEC(elliptic.P521()),
		ed:    mustEd(),
		ed2:   mustEd(),
	}
})

// allKeysConfig accepts every supported algorithm, with the test clock.
func allKeysConfig() auth.JWTConfig {
	k := keys()
	return auth.JWTConfig{
		HMACSecret: k.hmac,
		PublicKeys: []crypto.PublicKey{
			&k.rsa.PublicKey,
			&k.ec256.PublicKey,
			&k.ec384.PublicKey,
			&k.ec521.PublicKey,
			k.ed.Public(),
		},
		Now: fixedNow,
	}
}

// claims returns a valid claim set for testNow, with overrides applied; a
// nil override value deletes the claim.
func claims(overrides map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "u1",
		"iat": testNow.Add(-time.Minute).Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sign signs c with method and key, failing the test on error.
func sign(tb testing.TB, method jwt.SigningMethod, key any, c jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		tb.Fatalf("signing %s token: %v", method.Alg(), err)
	}
	return s
}
