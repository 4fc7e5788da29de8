// Package auth authenticates Switchboard connections and authorizes topic
// subscriptions.
//
// # Authentication
//
// An [Authenticator] turns the token a client presents during the WebSocket
// handshake into an [Identity]. [TokenFromRequest] finds that token in the
// HTTP request (an "Authorization: Bearer" header, a "token" query parameter,
// or a cookie), and [JWT] is the built-in Authenticator for JSON Web Tokens
// signed with HMAC, RSA (PKCS #1 v1.5 and PSS), ECDSA or Ed25519 keys.
// Any other scheme can be plugged in with [AuthenticatorFunc].
//
// Every error returned by [JWT.Authenticate] wraps exactly one of the
// sentinel errors [ErrNoToken], [ErrTokenMalformed], [ErrTokenInvalid] or
// [ErrTokenExpired], so callers can branch with [errors.Is]. [Reason] maps
// such an error to a short, stable string suitable for metrics labels and
// for the reason sent to the client when authentication fails.
//
// [NewHMACToken] issues short-lived HS256 tokens; it is meant for
// development servers and tests, not as a replacement for a real identity
// provider.
//
// # Topic authorization
//
// A [TopicAuthorizer] decides whether a connection may subscribe to a topic.
// [UserTopics] is the default policy: topics in the "user:" namespace are
// private to the user they name, and every other topic is open. Several
// policies can be combined with [ChainTopicAuthorizers]. A refusal wraps
// [ErrForbidden].
package auth
