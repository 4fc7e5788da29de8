package auth

import (
	"context"
	"errors"
	"time"
)

// Identity is who a connection is, after authentication.
type Identity struct {
	// UserID identifies the user; for a JWT it is the "sub" claim.
	UserID string
	// Claims holds every claim of the token, as decoded by encoding/json:
	// numbers are float64, objects are map[string]any and arrays are []any.
	// It is nil when the authenticator leaves it out (JWTConfig.OmitClaims).
	Claims map[string]any
	// ExpiresAt is when the credentials stop being valid. The zero value
	// means they never expire.
	ExpiresAt time.Time
}

// Authenticator turns a token into an Identity.
//
// Implementations must be safe for concurrent use. On failure they should
// return an error wrapping one of the sentinel errors of this package, so
// that [Reason] can classify it.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*Identity, error)
}

// AuthenticatorFunc adapts an ordinary function to the [Authenticator]
// interface.
type AuthenticatorFunc func(ctx context.Context, token string) (*Identity, error)

// Authenticate calls f(ctx, token).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (*Identity, error) {
	return f(ctx, token)
}

// Sentinel errors. Errors returned by [JWT.Authenticate] wrap exactly one of
// ErrNoToken, ErrTokenMalformed, ErrTokenInvalid and ErrTokenExpired; topic
// authorizers refuse with an error wrapping ErrForbidden. Test for them with
// [errors.Is].
var (
	// ErrNoToken means no token was presented.
	ErrNoToken = errors.New("auth: no token")
	// ErrTokenMalformed means the token is not a well-formed JWT: wrong
	// number of segments, bad base64 or bad JSON.
	ErrTokenMalformed = errors.New("auth: malformed token")
	// ErrTokenInvalid means the token is well formed but must not be
	// accepted: bad signature, disallowed or unknown algorithm, wrong issuer
	// or audience, not valid yet, missing "exp" or "sub", and so on.
	ErrTokenInvalid = errors.New("auth: invalid token")
	// ErrTokenExpired means the token is otherwise valid but its "exp" is in
	// the past, beyond the configured leeway. Clients may retry with a fresh
	// token.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrForbidden means an authenticated (or anonymous) connection is not
	// allowed to do what it asked, such as subscribing to a topic.
	ErrForbidden = errors.New("auth: forbidden")
)

// Reason returns a short, stable, machine-readable string for an
// authentication error, for metrics labels and for the reason of an
// AUTHENTICATE_FAILURE message: "no_token" for [ErrNoToken], "malformed"
// for [ErrTokenMalformed], "expired" for [ErrTokenExpired], and "invalid"
// for [ErrTokenInvalid] and any other error. Reason returns "" for a nil
// error.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, ErrTokenInvalid):
		// Checked before ErrTokenExpired so that an error claiming both
		// is reported as the more severe of the two.
		return "invalid"
	case errors.Is(err, ErrTokenExpired):
		return "expired"
	default:
		return "invalid"
	}
}
