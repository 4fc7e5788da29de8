package switchboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Message types of wire protocol v1.
const (
	// TypeConnect opens a session (client → server).
	TypeConnect = "CONNECT"
	// TypeConnectAck accepts a CONNECT (server → client).
	TypeConnectAck = "CONNECT_ACK"
	// TypeAuthenticate carries credentials (client → server).
	TypeAuthenticate = "AUTHENTICATE"
	// TypeAuthenticateSuccess accepts an AUTHENTICATE (server → client).
	TypeAuthenticateSuccess = "AUTHENTICATE_SUCCESS"
	// TypeAuthenticateFailure rejects an AUTHENTICATE (server → client).
	TypeAuthenticateFailure = "AUTHENTICATE_FAILURE"
	// TypeSubscribe asks for the publications of a topic (client → server).
	TypeSubscribe = "SUBSCRIBE"
	// TypeSubscribeSuccess accepts a SUBSCRIBE (server → client).
	TypeSubscribeSuccess = "SUBSCRIBE_SUCCESS"
	// TypeSubscribeFailure rejects a SUBSCRIBE (server → client).
	TypeSubscribeFailure = "SUBSCRIBE_FAILURE"
	// TypeUnsubscribe ends a subscription (client → server).
	TypeUnsubscribe = "UNSUBSCRIBE"
	// TypeUnsubscribeAck confirms an UNSUBSCRIBE (server → client).
	TypeUnsubscribeAck = "UNSUBSCRIBE_ACK"
	// TypePing checks that the peer is alive (either direction).
	TypePing = "PING"
	// TypePong answers a PING (either direction).
	TypePong = "PONG"
	// TypeAction asks the server to perform an action (client → server).
	TypeAction = "ACTION"
	// TypeActionResult answers an ACTION (server → client).
	TypeActionResult = "ACTION_RESULT"
	// TypeData carries the state of a resource (server → client).
	TypeData = "DATA"
	// TypeEvent carries a named event (server → client).
	TypeEvent = "EVENT"
	// TypeNotification carries a notification meant for a person (server → client).
	TypeNotification = "NOTIFICATION"
	// TypeError reports an error (server → client).
	TypeError = "ERROR"
	// TypeDisconnect announces the end of a session (either direction).
	TypeDisconnect = "DISCONNECT"
)

// Message is the envelope of wire protocol v1.
//
// A message travels as one JSON object per frame; see [JSONCodec] for the
// exact encoding. Messages built with the constructors of this package
// ([NewMessage], [NewEvent], [NewData], …) carry a fresh UUID id and the
// current time, and their Payload is compact, valid JSON.
type Message struct {
	// Type is the message type, one of the Type* constants for the
	// messages of protocol v1. It must not be empty.
	Type string
	// Payload is the raw JSON of the payload; nil means none (encoded as
	// {}). It is a JSON object in what the server sends; in what a client
	// sends it may be any JSON value, for the handler to judge. Decoding
	// yields nil for an absent or null payload and for an empty object.
	Payload json.RawMessage
	// ID identifies the message. The server sends UUIDs; a client may send
	// any string or number (a number is kept as its literal text).
	ID string
	// Timestamp is when the message was made, in seconds since the Unix
	// epoch; the constructors use millisecond precision.
	Timestamp float64
	// CorrelationID is, on a reply, the ID of the message it answers.
	CorrelationID string
	// Topic is, on a publication to a topic, the name of that topic.
	Topic string
	// Seq is the position of a publication in its topic's history; 0 means
	// none.
	Seq uint64
	// Epoch names the history that Seq counts in; "" means none.
	Epoch string
}

// NewMessage builds a message of type typ with a new UUID id and the current
// timestamp.
//
// The payload is marshalled with encoding/json (without HTML escaping); it
// must marshal to a JSON object, or to null for none. A nil payload means
// none. A json.RawMessage or []byte is taken to hold JSON already: it is
// validated (a JSON object or null, valid UTF-8) and used as is, without a
// copy, so the caller must not modify it afterwards. An empty object is
// stored as no payload (nil), which encodes the same way.
//
// Errors wrap [ErrBadMessage].
func NewMessage(typ string, payload any) (*Message, error) {
	if typ == "" {
		return nil, fmt.Errorf("%w: message type is empty", ErrBadMessage)
	}
	raw, err := messagePayload(payload)
	if err != nil {
		return nil, err
	}
	return &Message{
		Type:      typ,
		Payload:   raw,
		ID:        uuid.NewString(),
		Timestamp: messageNow(),
	}, nil
}

// messageEventPayload is the payload of an EVENT.
type messageEventPayload struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
}

// messageDataPayload is the payload of a DATA message.
type messageDataPayload struct {
	Resource string `json:"resource"`
	Data     any    `json:"data"`
}

// NewEvent builds an EVENT message named name, with payload
// {"event": name, "data": data}. The name must not be empty; data is
// marshalled with encoding/json (nil gives "data":null). Errors wrap
// [ErrBadMessage].
func NewEvent(name string, data any) (*Message, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: event name is empty", ErrBadMessage)
	}
	return NewMessage(TypeEvent, messageEventPayload{Event: name, Data: data})
}

// NewData builds a DATA message about resource, with payload
// {"resource": resource, "data": data}. The resource must not be empty; data
// is marshalled with encoding/json (nil gives "data":null). Errors wrap
// [ErrBadMessage].
func NewData(resource string, data any) (*Message, error) {
	if resource == "" {
		return nil, fmt.Errorf("%w: data resource is empty", ErrBadMessage)
	}
	return NewMessage(TypeData, messageDataPayload{Resource: resource, Data: data})
}

// Level is the level of a notification: how a client should present it.
type Level string

// Levels of a notification.
const (
	// LevelInfo is for neutral information; it is the default.
	LevelInfo Level = "info"
	// LevelSuccess reports that something went well.
	LevelSuccess Level = "success"
	// LevelWarning reports something that may need attention.
	LevelWarning Level = "warning"
	// LevelError reports a failure.
	LevelError Level = "error"
)

// NotificationAction is a button or link offered with a notification.
type NotificationAction struct {
	// ID identifies the action to the client's handler.
	ID string `json:"id"`
	// Label is the text shown to the user.
	Label string `json:"label"`
	// URL, if set, is where the action leads.
	URL string `json:"url,omitempty"`
}

// Notification is the payload of a NOTIFICATION message.
type Notification struct {
	// Title is the headline of the notification.
	Title string `json:"title"`
	// Message is the body text of the notification.
	Message string `json:"message"`
	// Level is how the notification should be presented; "" means
	// [LevelInfo] in [NewNotification].
	Level Level `json:"level"`
	// Actions are the buttons or links offered with the notification.
	Actions []NotificationAction `json:"actions,omitempty"`
}

// NewNotification builds a NOTIFICATION message whose payload is n marshalled
// as JSON. A Level of "" becomes [LevelInfo]; a Level other than the four
// defined ones is an error wrapping [ErrBadMessage].
func NewNotification(n Notification) (*Message, error) {
	switch n.Level {
	case "":
		n.Level = LevelInfo
	case LevelInfo, LevelSuccess, LevelWarning, LevelError:
	default:
		return nil, fmt.Errorf("%w: unknown notification level %q", ErrBadMessage, string(n.Level))
	}
	return NewMessage(TypeNotification, n)
}

// NewPing builds a PING message with a fresh id, the current timestamp and
// an empty payload.
func NewPing() *Message {
	return &Message{Type: TypePing, ID: uuid.NewString(), Timestamp: messageNow()}
}

// NewPong builds a PONG message answering ping: a fresh id, the current
// timestamp, an empty payload and CorrelationID set to ping.ID. A nil ping
// gives a PONG without a correlation id.
func NewPong(ping *Message) *Message {
	m := &Message{Type: TypePong, ID: uuid.NewString(), Timestamp: messageNow()}
	if ping != nil {
		m.CorrelationID = ping.ID
	}
	return m
}

// NewError builds an ERROR message with payload
// {"code": code, "message": message}.
func NewError(code ErrorCode, message string) *Message {
	p := make([]byte, 0, len(`{"code":"","message":""}`)+len(code)+len(message)+8)
	p = append(p, `{"code":`...)
	p = codecAppendString(p, string(code))
	p = append(p, `,"message":`...)
	p = codecAppendString(p, message)
	p = append(p, '}')
	return &Message{Type: TypeError, Payload: p, ID: uuid.NewString(), Timestamp: messageNow()}
}

// NewReply builds a message of type typ that answers req: like
// [NewMessage], with CorrelationID set to req.ID. A nil req is an error.
func NewReply(req *Message, typ string, payload any) (*Message, error) {
	if req == nil {
		return nil, errors.New("switchboard: NewReply: nil request")
	}
	m, err := NewMessage(typ, payload)
	if err != nil {
		return nil, err
	}
	m.CorrelationID = req.ID
	return m, nil
}

// DecodePayload unmarshals m.Payload into v with encoding/json. When there is
// no payload, v is left untouched and the error is nil. An error caused by
// the payload wraps [ErrBadMessage]; a v that is not a non-nil pointer gives
// encoding/json's *json.InvalidUnmarshalError as is, since that is a bug of
// the caller, not of the message.
func (m *Message) DecodePayload(v any) error {
	if m == nil || len(m.Payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(m.Payload, v); err != nil {
		var inv *json.InvalidUnmarshalError
		if errors.As(err, &inv) {
			return err
		}
		return fmt.Errorf("%w: payload: %w", ErrBadMessage, err)
	}
	return nil
}

// ErrorCode is the code of an ERROR message.
type ErrorCode string

// Codes of an ERROR message.
const (
	// CodeBadMessage: the message could not be decoded or is malformed.
	CodeBadMessage ErrorCode = "bad_message"
	// CodeUnknownType: the message type is not known.
	CodeUnknownType ErrorCode = "unknown_type"
	// CodeUnauthorized: the client is not authenticated.
	CodeUnauthorized ErrorCode = "unauthorized"
	// CodeForbidden: the client may not do this.
	CodeForbidden ErrorCode = "forbidden"
	// CodeRateLimited: the client sends too much too fast.
	CodeRateLimited ErrorCode = "rate_limited"
	// CodeTooLarge: the message is larger than allowed.
	CodeTooLarge ErrorCode = "too_large"
	// CodeInternal: the server failed.
	CodeInternal ErrorCode = "internal"
	// CodeTokenExpiring: the client's token expires soon and should be
	// renewed.
	CodeTokenExpiring ErrorCode = "token_expiring"
)

// messageNow is the current time in seconds since the Unix epoch, with
// millisecond precision.
func messageNow() float64 {
	return float64(time.Now().UnixMilli()) / 1000
}

// messagePayload turns the payload argument of a constructor into the raw
// JSON of a Message: nil for none, else a JSON object.
func messagePayload(payload any) (json.RawMessage, error) {
	var raw []byte
	switch p := payload.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(payload); err != nil {
			return nil, fmt.Errorf("%w: payload: %w", ErrBadMessage, err)
		}
		raw = bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	}
	return codecCheckPayload(raw)
}

// codecCheckPayload validates raw as the payload of a message to send and
// returns it without surrounding white space: nil for nothing, null or an
// empty object; an error wrapping ErrBadMessage for invalid JSON, invalid
// UTF-8 or a value that is not an object.
func codecCheckPayload(raw []byte) (json.RawMessage, error) {
	start := codecSkipSpace(raw, 0)
	end := len(raw)
	for end > start && codecIsSpace(raw[end-1]) {
		end--
	}
	raw = raw[start:end]
	if len(raw) == 0 {
		return nil, nil
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%w: payload is not valid UTF-8", ErrBadMessage)
	}
	n, err := codecScanValue(raw, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrBadMessage, err)
	}
	if n != len(raw) {
		return nil, fmt.Errorf("%w: payload: %v", ErrBadMessage, codecErrAt(raw, n, "expecting the end of the value"))
	}
	switch raw[0] {
	case 'n':
		return nil, nil
	case '{':
		if codecEmptyObject(raw) {
			return nil, nil
		}
		return raw, nil
	default:
		return nil, fmt.Errorf("%w: payload must be a JSON object, not %s", ErrBadMessage, codecKind(raw[0]))
	}
}
