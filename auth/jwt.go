package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxTokenLen bounds the size of a token Authenticate will look at, so that
// a hostile client cannot make the server decode megabytes of JSON. Real
// tokens are a few hundred bytes to a few kilobytes.
const maxTokenLen = 64 << 10

// Algorithm families, in the order they are listed when Algorithms is empty.
var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Algs = []string{"EdDSA"}
	// ecdsaAlgs maps each ECDSA algorithm to the only curve it may be
	// used with (RFC 7518, section 3.4).
	ecdsaAlgs = []struct{ alg, curve string }{
		{"ES256", "P-256"},
		{"ES384", "P-384"},
		{"ES512", "P-521"},
	}
)

// JWTConfig configures a [JWT] authenticator. At least one key must be set.
type JWTConfig struct {
	// HMACSecret verifies HS256, HS384 and HS512 tokens. It should be at
	// least as long as the hash output (32 bytes for HS256) and random.
	HMACSecret []byte
	// PublicKeys verify asymmetrically signed tokens: *rsa.PublicKey for
	// RS256/384/512 and PS256/384/512, *ecdsa.PublicKey on P-256, P-384 or
	// P-521 for ES256, ES384 or ES512 respectively, and ed25519.PublicKey
	// for EdDSA. Several keys may be given, for key rotation: a token is
	// accepted if any key that fits its algorithm verifies it.
	PublicKeys []crypto.PublicKey
	// Algorithms lists the accepted "alg" header values. Empty means every
	// algorithm that fits the configured keys. "none" is never accepted.
	Algorithms []string
	// Issuer, if set, must equal the token's "iss" claim.
	Issuer string
	// Audience, if set, must be one of the values of the token's "aud"
	// claim.
	Audience string
	// Leeway is the clock skew tolerated when checking "exp", "nbf" and
	// "iat". It must not be negative.
	Leeway time.Duration
	// Now returns the current time; nil means time.Now. It exists for tests.
	Now func() time.Time
	// OmitClaims leaves Identity.Claims nil; UserID and ExpiresAt are filled in as usual.
	// An identity lives as long as its connection, and the map of a token's claims costs
	// about 0.4 KiB: set it when nothing reads the claims (a TopicAuthorizer or hook that
	// looks only at UserID, or none).
	OmitClaims bool
}

// JWT is an [Authenticator] for JSON Web Tokens, built on
// github.com/golang-jwt/jwt/v5. Create one with [NewJWT]; the zero value
// rejects every token. A JWT is safe for concurrent use.
type JWT struct {
	parser *jwt.Parser
	// keys maps each allowed algorithm to the keys that may verify it.
	keys       map[string][]jwt.VerificationKey
	omitClaims bool
}

var _ Authenticator = (*JWT)(nil)

// NewJWT returns a JWT authenticator for cfg. It fails if cfg has no key, if
// a public key is of an unsupported type or curve, if Leeway is negative, or
// if Algorithms names an algorithm that is unknown, is "none", or does not
// fit any configured key.
func NewJWT(cfg JWTConfig) (*JWT, error) {
	if len(cfg.HMACSecret) == 0 && len(cfg.PublicKeys) == 0 {
		return nil, errors.New("auth: JWTConfig needs an HMACSecret or at least one public key")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: JWTConfig.Leeway is negative (%v)", cfg.Leeway)
	}

	// fit lists, for every algorithm some key can verify, those keys.
	fit := make(map[string][]jwt.VerificationKey)
	if len(cfg.HMACSecret) > 0 {
		secret := append([]byte(nil), cfg.HMACSecret...)
		for _, alg := range hmacAlgs {
			fit[alg] = []jwt.VerificationKey{secret}
		}
	}
	for i, k := range cfg.PublicKeys {
		if err := checkPublicKey(k); err != nil {
			return nil, fmt.Errorf("auth: JWTConfig.PublicKeys[%d]: %w", i, err)
		}
		for _, alg := range algsForKey(k) {
			fit[alg] = append(fit[alg], k)
		}
	}

	var allowed []string
	if len(cfg.Algorithms) == 0 {
		for _, alg := range knownAlgs() {
			if len(fit[alg]) > 0 {
				allowed = append(allowed, alg)
			}
		}
	} else {
		known := make(map[string]bool)
		for _, alg := range knownAlgs() {
			known[alg] = true
		}
		seen := make(map[string]bool)
		for _, alg := range cfg.Algorithms {
			switch {
			case strings.EqualFold(alg, "none"):
				return nil, errors.New(`auth: JWTConfig.Algorithms: "none" is never accepted`)
			case !known[alg]:
				return nil, fmt.Errorf("auth: JWTConfig.Algorithms: unknown algorithm %q", alg)
			case len(fit[alg]) == 0:
				return nil, fmt.Errorf("auth: JWTConfig.Algorithms: no configured key fits algorithm %q", alg)
			case !seen[alg]:
				seen[alg] = true
				allowed = append(allowed, alg)
			}
		}
	}
	if len(allowed) == 0 {
		// Unreachable with the checks above, but an empty list would make
		// the parser accept any algorithm, so never let it through.
		return nil, errors.New("auth: JWTConfig: no usable algorithm")
	}

	keys := make(map[string][]jwt.VerificationKey, len(allowed))
	for _, alg := range allowed {
		keys[alg] = fit[alg]
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(allowed),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &JWT{parser: jwt.NewParser(opts...), keys: keys, omitClaims: cfg.OmitClaims}, nil
}

// Authenticate verifies token and returns the identity it carries.
//
// The token must be signed with an allowed algorithm by a key that fits
// that algorithm; must have an "exp" claim that is not in the past and a
// non-empty string "sub" claim; and must satisfy "nbf", "iat", and the
// configured issuer and audience. Clock checks honour the configured
// leeway. Every error wraps exactly one of [ErrNoToken],
// [ErrTokenMalformed], [ErrTokenInvalid] or [ErrTokenExpired]; an expired
// token is reported as expired only if nothing else is wrong with it.
//
// Authenticate does no I/O, so ctx is not consulted.
func (j *JWT) Authenticate(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if j == nil || j.parser == nil {
		return nil, fmt.Errorf("%w: authenticator was not created with NewJWT", ErrTokenInvalid)
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: token is %d bytes, more than the limit of %d", ErrTokenMalformed, len(token), maxTokenLen)
	}

	claims := jwt.MapClaims{}
	_, err := j.parser.ParseWithClaims(token, claims, j.keyFunc)

	// Once the signature has been verified (which is the case when the
	// parser fails only on claims), our own requirements come first: a
	// token without "sub" is invalid, not merely expired.
	if err == nil || errors.Is(err, jwt.ErrTokenInvalidClaims) {
		if rerr := checkRequiredClaims(claims); rerr != nil {
			return nil, rerr
		}
	}
	if err != nil {
		return nil, classify(err)
	}

	sub, _ := claims.GetSubject()        // checked by checkRequiredClaims
	exp, _ := claims.GetExpirationTime() // likewise
	id := &Identity{UserID: sub, ExpiresAt: exp.Time}
	if !j.omitClaims {
		id.Claims = map[string]any(claims)
	}
	return id, nil
}

// keyFunc hands the parser the keys for the token's algorithm. The parser
// has already rejected algorithms outside the allowed set, and keys only
// holds keys of the right type for each algorithm, so an HMAC token is
// never checked against a public key or the reverse.
func (j *JWT) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	keys := j.keys[alg]
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("no key for algorithm %q", alg)
	case 1:
		return keys[0], nil
	default:
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
}

// checkRequiredClaims enforces the claims this package requires beyond what
// the parser checks: a non-zero "exp" and a non-empty string "sub".
func checkRequiredClaims(claims jwt.MapClaims) error {
	if _, ok := claims["exp"]; !ok {
		return fmt.Errorf(`%w: token has no "exp" claim`, ErrTokenInvalid)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil {
		return fmt.Errorf(`%w: "exp" claim: %w`, ErrTokenInvalid, err)
	}
	if exp == nil {
		return fmt.Errorf(`%w: token has a zero "exp" claim`, ErrTokenInvalid)
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return fmt.Errorf(`%w: "sub" claim: %w`, ErrTokenInvalid, err)
	}
	if sub == "" {
		return fmt.Errorf(`%w: token has no "sub" claim`, ErrTokenInvalid)
	}
	return nil
}

// classify wraps an error from the jwt parser in the matching sentinel.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	case errors.Is(err, jwt.ErrTokenExpired) && !hasOtherClaimProblem(err):
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	default:
		return fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
}

// hasOtherClaimProblem reports whether err, which may join several claim
// validation failures, contains any besides expiry.
func hasOtherClaimProblem(err error) bool {
	for _, target := range []error{
		jwt.ErrTokenNotValidYet,
		jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenInvalidSubject,
		jwt.ErrTokenInvalidId,
		jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrInvalidType,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// knownAlgs returns every algorithm name this package supports.
func knownAlgs() []string {
	algs := append([]string(nil), hmacAlgs...)
	algs = append(algs, rsaAlgs...)
	for _, e := range ecdsaAlgs {
		algs = append(algs, e.alg)
	}
	return append(algs, ed25519Algs...)
}

// algsForKey returns the algorithms k can verify. k must have passed
// checkPublicKey.
func algsForKey(k crypto.PublicKey) []string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return rsaAlgs
	case *ecdsa.PublicKey:
		for _, e := range ecdsaAlgs {
			if k.Curve.Params().Name == e.curve {
				return []string{e.alg}
			}
		}
	case ed25519.PublicKey:
		return ed25519Algs
	}
	return nil
}

// checkPublicKey reports whether k is a usable verification key, so that
// bad keys are caught at configuration time rather than when verifying.
func checkPublicKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.Sign() <= 0 || k.E < 2 {
			return errors.New("incomplete RSA public key")
		}
		return nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return errors.New("incomplete ECDSA public key")
		}
		name := k.Curve.Params().Name
		for _, e := range ecdsaAlgs {
			if name == e.curve {
				return nil
			}
		}
		return fmt.Errorf("ECDSA curve %q has no JWT algorithm (want P-256, P-384 or P-521)", name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 public key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return nil
	case nil:
		return errors.New("nil public key")
	default:
		return fmt.Errorf("unsupported public key type %T (want *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey)", k)
	}
}
