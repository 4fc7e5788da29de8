package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// NewHMACToken issues an HS256-signed JWT for userID that expires ttl from
// now, with the claims in extra merged in. It is meant for development
// servers and tests.
//
// The token's "sub", "iat" and "exp" claims are always set by NewHMACToken
// and override any values in extra. "exp" is rounded up to the next whole
// second, so the token never expires earlier than ttl. It is an error for
// secret or userID to be empty, for ttl to be zero or negative, or for a
// value in extra not to be encodable as JSON.
func NewHMACToken(secret []byte, userID string, ttl time.Duration, extra map[string]any) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: NewHMACToken: empty secret")
	}
	if userID == "" {
		return "", errors.New("auth: NewHMACToken: empty user ID")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: NewHMACToken: ttl must be positive, got %v", ttl)
	}

	now := time.Now()
	expiry := now.Add(ttl)
	exp := expiry.Unix()
	if expiry.Nanosecond() > 0 {
		exp++
	}

	claims := make(jwt.MapClaims, len(extra)+3)
	for k, v := range extra {
		claims[k] = v
	}
	claims["sub"] = userID
	claims["iat"] = now.Unix()
	claims["exp"] = exp

	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: NewHMACToken: %w", err)
	}
	return signed, nil
}

// TokenFromRequest extracts the token a client presents during the
// handshake. It looks, in order, at an "Authorization: Bearer <token>"
// header (the scheme is matched case-insensitively), the "token" query
// parameter, and the cookie named cookieName, which is skipped when
// cookieName is "". It returns the first non-empty token found, or "".
//
// Browsers cannot set headers on WebSocket handshakes, which is why the
// query parameter and the cookie are consulted; note that query parameters
// tend to end up in access logs.
func TokenFromRequest(r *http.Request, cookieName string) string {
	if r == nil {
		return ""
	}
	if t := bearerToken(r.Header.Get("Authorization")); t != "" {
		return t
	}
	if r.URL != nil {
		if t := r.URL.Query().Get("token"); t != "" {
			return t
		}
	}
	if cookieName != "" {
		if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// bearerToken returns the credentials of a "Bearer" Authorization header
// value, or "" if h uses another scheme or carries no credentials.
func bearerToken(h string) string {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(rest)
}
