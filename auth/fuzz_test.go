package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/switchboardrt/switchboard/auth"
)

// FuzzAuthenticate checks that Authenticate never panics on arbitrary input,
// that every failure wraps exactly one sentinel error, and that every success
// yields a usable identity.
func FuzzAuthenticate(f *testing.F) {
	k := keys()
	a, err := auth.NewJWT(allKeysConfig())
	if err != nil {
		f.Fatal(err)
	}

	hs := sign(f, jwt.SigningMethodHS256, k.hmac, claims(map[string]any{"role": "admin", "n": 1.5}))
	seeds := []string{
		hs,
		sign(f, jwt.SigningMethodES256, k.ec256, claims(nil)),
		sign(f, jwt.SigningMethodEdDSA, k.ed, claims(map[string]any{"aud": []string{"a", "b"}})),
		sign(f, jwt.SigningMethodPS256, k.rsa, claims(nil)),
		sign(f, jwt.SigningMethodHS256, k.hmac, claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})),
		sign(f, jwt.SigningMethodHS256, k.hmac, claims(map[string]any{"sub": nil})),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)),
		hs[:len(hs)-10],
		hs[:len(hs)/2],
		tamper(hs),
		"",
		"garbage",
		"a.b.c",
		"..",
		b64(`{"alg":"HS256"}`) + "." + b64(`{"exp":1e309,"sub":"x"}`) + ".",
		b64(`{"alg":"EdDSA"}`) + "." + b64(`{"exp":-1e300,"sub":{}}`) + "." + b64("sig"),
		b64(`{"alg":["HS256"]}`) + "." + b64(`[]`) + ".",
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		id, err := a.Authenticate(t.Context(), token)
		if err != nil {
			if id != nil {
				t.Fatalf("identity %+v returned with error %v", id, err)
			}
			if n := countSentinels(err); n != 1 {
				t.Fatalf("error %q wraps %d sentinel errors, want exactly 1", err, n)
			}
			if errors.Is(err, auth.ErrNoToken) != (token == "") {
				t.Fatalf("ErrNoToken for token %q: %v", token, err)
			}
			return
		}
		if id == nil || id.UserID == "" || id.ExpiresAt.IsZero() || id.Claims == nil {
			t.Fatalf("accepted token %q gave unusable identity %+v", token, id)
		}
		if !id.ExpiresAt.After(testNow) {
			t.Fatalf("accepted token %q that expired at %v", token, id.ExpiresAt)
		}
	})
}
