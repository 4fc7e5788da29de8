package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/switchboardrt/switchboard/auth"
)

func TestJWTAcceptsEveryAlgorithm(t *testing.T) {
	k := keys()
	a, err := auth.NewJWT(allKeysConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method jwt.SigningMethod
		key    any
	}{
		{jwt.SigningMethodHS256, k.hmac},
		{jwt.SigningMethodHS384, k.hmac},
		{jwt.SigningMethodHS512, k.hmac},
		{jwt.SigningMethodRS256, k.rsa},
		{jwt.SigningMethodRS384, k.rsa},
		{jwt.SigningMethodRS512, k.rsa},
		{jwt.SigningMethodPS256, k.rsa},
		{jwt.SigningMethodPS384, k.rsa},
		{jwt.SigningMethodPS512, k.rsa},
		{jwt.SigningMethodES256, k.ec256},
		{jwt.SigningMethodES384, k.ec384},
		{jwt.SigningMethodES512, k.ec521},
		{jwt.SigningMethodEdDSA, k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.method.Alg(), func(t *testing.T) {
			tok := sign(t, tt.method, tt.key, claims(nil))
			id, err := a.Authenticate(t.Context(), tok)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if id.UserID != "u1" {
				t.Errorf("UserID = %q, want %q", id.UserID, "u1")
			}
			if want := testNow.Add(time.Hour); !id.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", id.ExpiresAt, want)
			}
		})
	}
}

func TestJWTAuthenticate(t *testing.T) {
	k := keys()
	at := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	withCfg := func(f func(*auth.JWTConfig)) auth.JWTConfig {
		c := allKeysConfig()
		f(&c)
		return c
	}
	rsaOnly := auth.JWTConfig{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}, Now: fixedNow}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, k.hmac, c) }
	valid := hs(claims(nil))

	tests := []struct {
		name    string
		cfg     auth.JWTConfig
		token   string
		wantErr error  // nil means the token must be accepted
		wantMsg string // substring of the error message, if set
	}{
		{name: "valid", token: valid},
		{name: "empty", token: "", wantErr: auth.ErrNoToken},

		// Malformed input.
		{name: "one segment", token: "garbage", wantErr: auth.ErrTokenMalformed},
		{name: "four segments", token: valid + ".x", wantErr: auth.ErrTokenMalformed},
		{name: "bad base64", token: "!!!.###.$$$", wantErr: auth.ErrTokenMalformed},
		{name: "truncated", token: valid[:len(valid)/2], wantErr: auth.ErrTokenMalformed},
		{name: "header not JSON", token: b64("nope") + "." + b64("{}") + ".", wantErr: auth.ErrTokenMalformed},
		{name: "too long", token: strings.Repeat("a", 1<<20), wantErr: auth.ErrTokenMalformed},

		// Signature and algorithm problems.
		{name: "wrong HMAC secret", token: sign(t, jwt.SigningMethodHS256, []byte("another secret, of decent length"), claims(nil)), wantErr: auth.ErrTokenInvalid},
		{name: "wrong RSA key", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims(nil)), wantErr: auth.ErrTokenInvalid},
		{name: "wrong Ed25519 key", token: sign(t, jwt.SigningMethodEdDSA, k.ed2, claims(nil)), wantErr: auth.ErrTokenInvalid},
		{name: "tampered payload", token: tamper(valid), wantErr: auth.ErrTokenInvalid},
		{name: "HS256 against RSA-only config", cfg: rsaOnly, token: valid, wantErr: auth.ErrTokenInvalid},
		{name: "HS256 keyed with the RSA public key", cfg: rsaOnly, token: sign(t, jwt.SigningMethodHS256, rsaPEM, claims(nil)), wantErr: auth.ErrTokenInvalid},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), wantErr: auth.ErrTokenInvalid},
		{name: "alg missing", token: b64(`{"typ":"JWT"}`) + "." + b64(`{"sub":"u1"}`) + ".", wantErr: auth.ErrTokenInvalid},
		{name: "alg unknown", token: b64(`{"alg":"XX999"}`) + "." + b64(`{"sub":"u1"}`) + ".", wantErr: auth.ErrTokenInvalid},
		{
			name:    "alg not in Algorithms",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Algorithms = []string{"RS256"} }),
			token:   sign(t, jwt.SigningMethodPS256, k.rsa, claims(nil)),
			wantErr: auth.ErrTokenInvalid,
		},
		{
			name:    "ES256 with only a P-384 key",
			cfg:     auth.JWTConfig{PublicKeys: []crypto.PublicKey{&k.ec384.PublicKey}, Now: fixedNow},
			token:   sign(t, jwt.SigningMethodES256, k.ec256, claims(nil)),
			wantErr: auth.ErrTokenInvalid,
		},

		// Expiry.
		{name: "expired", token: hs(claims(map[string]any{"exp": at(-time.Second)})), wantErr: auth.ErrTokenExpired},
		{name: "expires now", token: hs(claims(map[string]any{"exp": at(0)})), wantErr: auth.ErrTokenExpired},
		{
			name:  "expired within leeway",
			cfg:   withCfg(func(c *auth.JWTConfig) { c.Leeway = time.Minute }),
			token: hs(claims(map[string]any{"exp": at(-30 * time.Second)})),
		},
		{
			name:    "expired beyond leeway",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Leeway = time.Minute }),
			token:   hs(claims(map[string]any{"exp": at(-2 * time.Minute)})),
			wantErr: auth.ErrTokenExpired,
		},
		{name: "missing exp", token: hs(claims(map[string]any{"exp": nil})), wantErr: auth.ErrTokenInvalid, wantMsg: `no "exp" claim`},
		{name: "zero exp", token: hs(claims(map[string]any{"exp": 0})), wantErr: auth.ErrTokenInvalid, wantMsg: "exp"},
		{name: "exp not a number", token: hs(claims(map[string]any{"exp": "tomorrow"})), wantErr: auth.ErrTokenInvalid},
		{name: "expired and bad signature", token: sign(t, jwt.SigningMethodRS256, k.rsa2, claims(map[string]any{"exp": at(-time.Hour)})), wantErr: auth.ErrTokenInvalid},
		{name: "expired and no sub", token: hs(claims(map[string]any{"exp": at(-time.Hour), "sub": nil})), wantErr: auth.ErrTokenInvalid},
		{
			name:    "expired and wrong issuer",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Issuer = "https://id.example" }),
			token:   hs(claims(map[string]any{"exp": at(-time.Hour), "iss": "https://evil.example"})),
			wantErr: auth.ErrTokenInvalid,
		},

		// Subject.
		{name: "missing sub", token: hs(claims(map[string]any{"sub": nil})), wantErr: auth.ErrTokenInvalid, wantMsg: `no "sub" claim`},
		{name: "empty sub", token: hs(claims(map[string]any{"sub": ""})), wantErr: auth.ErrTokenInvalid},
		{name: "sub not a string", token: hs(claims(map[string]any{"sub": 42})), wantErr: auth.ErrTokenInvalid},

		// Not before and issued at.
		{name: "nbf in the past", token: hs(claims(map[string]any{"nbf": at(-time.Minute)}))},
		{name: "nbf in the future", token: hs(claims(map[string]any{"nbf": at(time.Minute)})), wantErr: auth.ErrTokenInvalid},
		{
			name:  "nbf in the future within leeway",
			cfg:   withCfg(func(c *auth.JWTConfig) { c.Leeway = 2 * time.Minute }),
			token: hs(claims(map[string]any{"nbf": at(time.Minute)})),
		},
		{name: "iat in the future", token: hs(claims(map[string]any{"iat": at(time.Minute)})), wantErr: auth.ErrTokenInvalid},
		{
			name:  "iat in the future within leeway",
			cfg:   withCfg(func(c *auth.JWTConfig) { c.Leeway = 2 * time.Minute }),
			token: hs(claims(map[string]any{"iat": at(time.Minute)})),
		},
		{name: "no iat", token: hs(claims(map[string]any{"iat": nil}))},

		// Issuer and audience.
		{
			name:  "issuer match",
			cfg:   withCfg(func(c *auth.JWTConfig) { c.Issuer = "https://id.example" }),
			token: hs(claims(map[string]any{"iss": "https://id.example"})),
		},
		{
			name:    "issuer mismatch",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Issuer = "https://id.example" }),
			token:   hs(claims(map[string]any{"iss": "https://evil.example"})),
			wantErr: auth.ErrTokenInvalid,
		},
		{
			name:    "issuer missing",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Issuer = "https://id.example" }),
			token:   valid,
			wantErr: auth.ErrTokenInvalid,
		},
		{
			name:  "audience string match",
			cfg:   withCfg(func(c *auth.JWTConfig) { c.Audience = "switchboard" }),
			token: hs(claims(map[string]any{"aud": "switchboard"})),
		},
		{
			name:  "audience list contains",
			cfg:   withCfg(func(c *auth.JWTConfig) { c.Audience = "switchboard" }),
			token: hs(claims(map[string]any{"aud": []string{"billing", "switchboard"}})),
		},
		{
			name:    "audience mismatch",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Audience = "switchboard" }),
			token:   hs(claims(map[string]any{"aud": []string{"billing"}})),
			wantErr: auth.ErrTokenInvalid,
		},
		{
			name:    "audience missing",
			cfg:     withCfg(func(c *auth.JWTConfig) { c.Audience = "switchboard" }),
			token:   valid,
			wantErr: auth.ErrTokenInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.HMACSecret == nil && cfg.PublicKeys == nil {
				cfg = allKeysConfig()
			}
			a, err := auth.NewJWT(cfg)
			if err != nil {
				t.Fatalf("NewJWT: %v", err)
			}
			id, err := a.Authenticate(t.Context(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Authenticate: unexpected error %v", err)
				}
				if id == nil || id.UserID != "u1" {
					t.Fatalf("Authenticate = %+v, want UserID u1", id)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate error = %v, want %v", err, tt.wantErr)
			}
			if id != nil {
				t.Errorf("Authenticate returned identity %+v along with error", id)
			}
			if n := countSentinels(err); n != 1 {
				t.Errorf("error %q wraps %d sentinels, want exactly 1", err, n)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestJWTKeyRotation(t *testing.T) {
	k := keys()
	a, err := auth.NewJWT(auth.JWTConfig{
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.rsa2.PublicKey, k.ed.Public(), k.ed2.Public()},
		Now:        fixedNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		method  jwt.SigningMethod
		key     any
		wantErr error
	}{
		{"old RSA key", jwt.SigningMethodRS256, k.rsa, nil},
		{"new RSA key", jwt.SigningMethodRS256, k.rsa2, nil},
		{"new RSA key PSS", jwt.SigningMethodPS512, k.rsa2, nil},
		{"retired RSA key", jwt.SigningMethodRS256, k.rsa3, auth.ErrTokenInvalid},
		{"old Ed25519 key", jwt.SigningMethodEdDSA, k.ed, nil},
		{"new Ed25519 key", jwt.SigningMethodEdDSA, k.ed2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Authenticate(t.Context(), sign(t, tt.method, tt.key, claims(nil)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestJWTClaimsPassThrough(t *testing.T) {
	k := keys()
	a, err := auth.NewJWT(allKeysConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := claims(map[string]any{
		"role":   "admin",
		"rooms":  []string{"lobby", "ops"},
		"level":  7,
		"beta":   true,
		"nested": map[string]any{"org": "acme", "seats": 3},
		"none":   "",
	})
	id, err := a.Authenticate(t.Context(), sign(t, jwt.SigningMethodES256, k.ec256, c))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"sub":    "u1",
		"iat":    float64(testNow.Add(-time.Minute).Unix()),
		"exp":    float64(testNow.Add(time.Hour).Unix()),
		"role":   "admin",
		"rooms":  []any{"lobby", "ops"},
		"level":  float64(7),
		"beta":   true,
		"nested": map[string]any{"org": "acme", "seats": float64(3)},
		"none":   "",
	}
	if !reflect.DeepEqual(id.Claims, want) {
		t.Errorf("Claims = %#v\nwant %#v", id.Claims, want)
	}
}

// OmitClaims leaves Claims out and nothing else: the user, the expiry and the checks are
// those of the default configuration.
func TestJWTOmitClaims(t *testing.T) {
	k := keys()
	cfg := allKeysConfig()
	cfg.OmitClaims = true
	a, err := auth.NewJWT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(t.Context(), sign(t, jwt.SigningMethodES256, k.ec256, claims(map[string]any{"role": "admin"})))
	if err != nil {
		t.Fatal(err)
	}
	if id.Claims != nil {
		t.Errorf("Claims = %v, want nil", id.Claims)
	}
	if id.UserID != "u1" || !id.ExpiresAt.Equal(testNow.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("identity %+v, want user u1 expiring at %v", id, testNow.Add(time.Hour))
	}
	expired := claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})
	if _, err := a.Authenticate(t.Context(), sign(t, jwt.SigningMethodES256, k.ec256, expired)); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("expired token: %v, want ErrTokenExpired", err)
	}
}

func TestZeroJWTRejects(t *testing.T) {
	var a auth.JWT
	if _, err := a.Authenticate(t.Context(), "a.b.c"); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("zero JWT: error = %v, want ErrTokenInvalid", err)
	}
	var nilJWT *auth.JWT
	if _, err := nilJWT.Authenticate(t.Context(), "a.b.c"); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("nil JWT: error = %v, want ErrTokenInvalid", err)
	}
}

func TestNewJWT(t *testing.T) {
	k := keys()
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaOnly := []crypto.PublicKey{&k.rsa.PublicKey}
	tests := []struct {
		name    string
		cfg     auth.JWTConfig
		wantErr string // "" means success
	}{
		{name: "HMAC only", cfg: auth.JWTConfig{HMACSecret: k.hmac}},
		{name: "public keys only", cfg: auth.JWTConfig{PublicKeys: rsaOnly}},
		{name: "explicit fitting algorithms", cfg: auth.JWTConfig{HMACSecret: k.hmac, PublicKeys: rsaOnly, Algorithms: []string{"HS512", "PS256", "PS256"}}},
		{name: "no key", cfg: auth.JWTConfig{}, wantErr: "HMACSecret"},
		{name: "empty secret", cfg: auth.JWTConfig{HMACSecret: []byte{}}, wantErr: "HMACSecret"},
		{name: "none", cfg: auth.JWTConfig{HMACSecret: k.hmac, Algorithms: []string{"none"}}, wantErr: "none"},
		{name: "NONE", cfg: auth.JWTConfig{HMACSecret: k.hmac, Algorithms: []string{"HS256", "NONE"}}, wantErr: "none"},
		{name: "unknown algorithm", cfg: auth.JWTConfig{HMACSecret: k.hmac, Algorithms: []string{"HS1024"}}, wantErr: "unknown"},
		{name: "HS256 without secret", cfg: auth.JWTConfig{PublicKeys: rsaOnly, Algorithms: []string{"HS256"}}, wantErr: "HS256"},
		{name: "RS256 without RSA key", cfg: auth.JWTConfig{HMACSecret: k.hmac, Algorithms: []string{"RS256"}}, wantErr: "RS256"},
		{name: "ES384 with P-256 key", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{&k.ec256.PublicKey}, Algorithms: []string{"ES384"}}, wantErr: "ES384"},
		{name: "nil key", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{nil}}, wantErr: "nil"},
		{name: "nil RSA pointer", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{(*rsa.PublicKey)(nil)}}, wantErr: "RSA"},
		{name: "private key", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{k.rsa}}, wantErr: "unsupported"},
		{name: "X25519 key", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{x25519.PublicKey()}}, wantErr: "unsupported"},
		{name: "P-224 key", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{&p224.PublicKey}}, wantErr: "P-224"},
		{name: "short Ed25519 key", cfg: auth.JWTConfig{PublicKeys: []crypto.PublicKey{ed25519.PublicKey{1, 2, 3}}}, wantErr: "Ed25519"},
		{name: "negative leeway", cfg: auth.JWTConfig{HMACSecret: k.hmac, Leeway: -time.Second}, wantErr: "Leeway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.NewJWT(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || a == nil {
					t.Fatalf("NewJWT = %v, %v; want success", a, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewJWT succeeded, want error mentioning %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewJWT error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestJWTDoesNotAliasSecret(t *testing.T) {
	secret := []byte("a secret that is long enough, ok")
	a, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, []byte("a secret that is long enough, ok"), claims(nil))
	secret[0] = 'X'
	if _, err := a.Authenticate(t.Context(), tok); err != nil {
		t.Fatalf("changing the caller's secret slice affected the authenticator: %v", err)
	}
}

func TestNewHMACToken(t *testing.T) {
	secret := keys().hmac
	a, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	tok, err := auth.NewHMACToken(secret, "42", 90*time.Minute, map[string]any{
		"role": "admin",
		"sub":  "someone else", // must not override userID
		"exp":  1,              // must not override ttl
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(t.Context(), tok)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if id.UserID != "42" {
		t.Errorf("UserID = %q, want 42", id.UserID)
	}
	if id.Claims["role"] != "admin" {
		t.Errorf(`Claims["role"] = %v, want admin`, id.Claims["role"])
	}
	if earliest := before.Add(90 * time.Minute); id.ExpiresAt.Before(earliest.Truncate(time.Second)) {
		t.Errorf("ExpiresAt = %v, want at least %v", id.ExpiresAt, earliest)
	}
	if latest := time.Now().Add(90*time.Minute + time.Second); id.ExpiresAt.After(latest) {
		t.Errorf("ExpiresAt = %v, want at most %v", id.ExpiresAt, latest)
	}

	// Sub-second ttls round up rather than producing an expired token.
	tok, err = auth.NewHMACToken(secret, "42", time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(t.Context(), tok); err != nil && !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("1ms token: %v", err)
	}
}

func TestNewHMACTokenErrors(t *testing.T) {
	secret := keys().hmac
	tests := []struct {
		name   string
		secret []byte
		userID string
		ttl    time.Duration
		extra  map[string]any
	}{
		{"zero ttl", secret, "42", 0, nil},
		{"negative ttl", secret, "42", -time.Minute, nil},
		{"empty secret", nil, "42", time.Minute, nil},
		{"empty user", secret, "", time.Minute, nil},
		{"unencodable claim", secret, "42", time.Minute, map[string]any{"ch": make(chan int)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := auth.NewHMACToken(tt.secret, tt.userID, tt.ttl, tt.extra)
			if err == nil {
				t.Fatalf("NewHMACToken = %q, want error", tok)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{auth.ErrNoToken, "no_token"},
		{auth.ErrTokenMalformed, "malformed"},
		{auth.ErrTokenInvalid, "invalid"},
		{auth.ErrTokenExpired, "expired"},
		{fmt.Errorf("checking: %w", auth.ErrTokenExpired), "expired"},
		{fmt.Errorf("%w: %w", auth.ErrTokenInvalid, auth.ErrTokenExpired), "invalid"},
		{auth.ErrForbidden, "invalid"},
		{errors.New("database down"), "invalid"},
	}
	for _, tt := range tests {
		if got := auth.Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestReasonOfAuthenticate(t *testing.T) {
	k := keys()
	a, err := auth.NewJWT(allKeysConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token string
		want  string
	}{
		{"", "no_token"},
		{"not-a-jwt", "malformed"},
		{sign(t, jwt.SigningMethodHS256, []byte("wrong secret, but long enough!!!"), claims(nil)), "invalid"},
		{sign(t, jwt.SigningMethodHS256, k.hmac, claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()})), "expired"},
	}
	for _, tt := range tests {
		_, err := a.Authenticate(t.Context(), tt.token)
		if got := auth.Reason(err); got != tt.want {
			t.Errorf("Reason(Authenticate(%.20q)) = %q (error %v), want %q", tt.token, got, err, tt.want)
		}
	}
}

func TestAuthenticatorFunc(t *testing.T) {
	var a auth.Authenticator = auth.AuthenticatorFunc(func(_ context.Context, token string) (*auth.Identity, error) {
		if token != "letmein" {
			return nil, auth.ErrTokenInvalid
		}
		return &auth.Identity{UserID: "guest"}, nil
	})
	if id, err := a.Authenticate(t.Context(), "letmein"); err != nil || id.UserID != "guest" {
		t.Errorf(`Authenticate("letmein") = %+v, %v`, id, err)
	}
	if _, err := a.Authenticate(t.Context(), "nope"); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Errorf(`Authenticate("nope") error = %v, want ErrTokenInvalid`, err)
	}
}

// countSentinels counts how many of the authentication sentinels err wraps.
func countSentinels(err error) int {
	n := 0
	for _, s := range []error{auth.ErrNoToken, auth.ErrTokenMalformed, auth.ErrTokenInvalid, auth.ErrTokenExpired} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// b64 encodes s as a JWT segment.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// tamper replaces the payload of tok with one granting a different subject,
// keeping the original header and signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = b64(`{"sub":"admin","exp":4102444800}`)
	return strings.Join(parts, ".")
}
