package switchboard

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the Manager and Conn methods. Compare with errors.Is.
var (
	// ErrClosed is returned by operations on a connection that is closing or closed.
	ErrClosed = errors.New("switchboard: connection closed")
	// ErrShutdown is returned by operations on a Manager that has been shut down.
	ErrShutdown = errors.New("switchboard: manager shut down")
	// ErrIllegalTransition reports a state change the transition table does not allow.
	ErrIllegalTransition = errors.New("switchboard: illegal state transition")
	// ErrClientNotFound is returned by SendToClient when no connection has the given ID and
	// the Manager uses the MemoryBroker. With a cluster broker the client may be on another
	// node, so SendToClient cannot tell and returns nil (see docs/scaling.md).
	ErrClientNotFound = errors.New("switchboard: client not found")
	// ErrInvalidTopic reports a topic name that is empty, too long or has characters outside
	// the allowed set (see Config.MaxTopicLength and ValidTopic).
	ErrInvalidTopic = errors.New("switchboard: invalid topic")
	// ErrTooManySubscriptions reports that a connection would exceed Config.MaxSubscriptions.
	ErrTooManySubscriptions = errors.New("switchboard: too many subscriptions")
	// ErrTooManyConnections reports that a user would exceed Config.MaxConnsPerUser.
	ErrTooManyConnections = errors.New("switchboard: too many connections for this user")
	// ErrUserMismatch reports a re-authentication as a different user on the same connection.
	ErrUserMismatch = errors.New("switchboard: token is for a different user")
	// ErrAuthDisabled reports an authentication attempt on a Manager without an Authenticator.
	ErrAuthDisabled = errors.New("switchboard: authentication is not configured")
	// ErrUnsupported is returned by a Codec that cannot represent a message type.
	ErrUnsupported = errors.New("switchboard: message not supported by codec")
	// ErrNotKept is wrapped by the error of a send to users when the InboxStore failed to
	// keep the message for a user (see SendToUser); it was still published live.
	ErrNotKept = errors.New("switchboard: message not kept for an offline user")
)

// Close codes sent in the WebSocket close frame. docs/protocol.md lists each with whether a
// client should reconnect after it.
const (
	CloseNormal          = 1000 // the client asked to leave; do not reconnect
	CloseGoingAway       = 1001 // server shutting down or restarting; reconnect
	CloseAbnormal        = 1006 // no close frame (network failure); reported locally only
	ClosePolicyViolation = 1008 // auth timeout, sustained abuse, pong timeout; reconnect with backoff
	CloseMessageTooBig   = 1009 // an inbound message exceeded Config.MaxMessageSize
	CloseInternalError   = 1011 // unexpected server error; reconnect with backoff
	CloseTryAgainLater   = 1013 // slow consumer: the send queue overflowed; reconnect
	CloseAuthFailed      = 4001 // authentication failed or the token expired; reconnect only with a new token
	CloseForbidden       = 4003 // the identity is not allowed here; do not reconnect blindly
)

// Error is a protocol error: handlers return one to answer a request with an ERROR message of
// a given code. Any other error returned by a handler is answered with CodeInternal and
// reported to Config.OnError.
type Error struct {
	Code    ErrorCode
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("switchboard: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
