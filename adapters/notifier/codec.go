package notifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/switchboardrt/switchboard"
)

// Codec is the notifier wire format: one JSON object per text frame, with exactly two
// keys, in this order:
//
//	{"type":"db_upgrade_status","data":{"start_version":26,"target_version":35}}
//
// Encode writes the message Type lower-cased as "type" (the aggregator's types are
// snake_case already; a DATA, EVENT or NOTIFICATION broadcast from elsewhere becomes
// "data", "event" or "notification") and the raw Payload as "data" ({} when the payload
// is empty or null). Nothing else of the message is written: no id, timestamp or topic.
// Encode copies Payload verbatim, like switchboard.JSONCodec: it must hold valid JSON.
//
// The control messages of wire protocol v1 (PING, PONG, ERROR, DISCONNECT, CONNECT,
// CONNECT_ACK, AUTHENTICATE*, SUBSCRIBE*, UNSUBSCRIBE*, ACTION, ACTION_RESULT, and any
// type ending in _SUCCESS, _FAILURE, _ACK or _RESULT) have no notifier frame: Encode
// returns an error wrapping switchboard.ErrUnsupported, so the manager skips them for
// notifier connections and keeps them alive with WebSocket ping frames instead of PING
// messages.
//
// Decode accepts any frame, since any message from a front end means "subscribe me":
// it yields a message of type "subscribe" whose Payload is a copy of the frame when the
// frame is a JSON value other than null.
//
// The zero value is ready and safe for concurrent use.
type Codec struct{}

var _ switchboard.Codec = Codec{}

// TypeSubscribe is the type Decode gives every frame a front end sends.
const TypeSubscribe = "subscribe"

// Name returns "notifier".
func (Codec) Name() string { return "notifier" }

// Binary returns false: notifier frames are text frames.
func (Codec) Binary() bool { return false }

// controlTypes are the wire protocol v1 types with no notifier frame.
var controlTypes = map[string]bool{
	switchboard.TypeConnect:             true,
	switchboard.TypeConnectAck:          true,
	switchboard.TypeAuthenticate:        true,
	switchboard.TypeAuthenticateSuccess: true,
	switchboard.TypeAuthenticateFailure: true,
	switchboard.TypeSubscribe:           true,
	switchboard.TypeSubscribeSuccess:    true,
	switchboard.TypeSubscribeFailure:    true,
	switchboard.TypeUnsubscribe:         true,
	switchboard.TypeUnsubscribeAck:      true,
	switchboard.TypePing:                true,
	switchboard.TypePong:                true,
	switchboard.TypeAction:              true,
	switchboard.TypeActionResult:        true,
	switchboard.TypeError:               true,
	switchboard.TypeDisconnect:          true,
}

// IsControl reports whether typ is a control type of wire protocol v1, which the
// notifier format does not carry (see Codec).
func IsControl(typ string) bool {
	if controlTypes[typ] {
		return true
	}
	for _, suffix := range []string{"_SUCCESS", "_FAILURE", "_ACK", "_RESULT"} {
		if strings.HasSuffix(typ, suffix) {
			return true
		}
	}
	return false
}

// Encode appends the notifier frame of m to dst. It fails, returning dst unchanged, with
// an error wrapping switchboard.ErrBadMessage for a nil message or an empty type, and
// with one wrapping switchboard.ErrUnsupported for a control type.
func (Codec) Encode(dst []byte, m *switchboard.Message) ([]byte, error) {
	if m == nil {
		return dst, fmt.Errorf("%w: notifier: cannot encode a nil message", switchboard.ErrBadMessage)
	}
	if m.Type == "" {
		return dst, fmt.Errorf("%w: notifier: cannot encode a message without a type", switchboard.ErrBadMessage)
	}
	if IsControl(m.Type) {
		return dst, fmt.Errorf("%w: notifier: %s has no notifier frame", switchboard.ErrUnsupported, m.Type)
	}
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, strings.ToLower(m.Type))
	dst = append(dst, `,"data":`...)
	if p := bytes.TrimSpace(m.Payload); len(p) == 0 || string(p) == "null" {
		dst = append(dst, '{', '}')
	} else {
		dst = append(dst, m.Payload...)
	}
	return append(dst, '}'), nil
}

// Decode fills m from any frame: see Codec. It never fails for a non-nil m.
func (Codec) Decode(frame []byte, m *switchboard.Message) error {
	if m == nil {
		return errors.New("notifier: Decode into a nil message")
	}
	*m = switchboard.Message{Type: TypeSubscribe}
	if p := bytes.TrimSpace(frame); len(p) > 0 && string(p) != "null" && json.Valid(p) {
		m.Payload = bytes.Clone(p)
	}
	return nil
}

// appendString appends s to dst as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, <, > and & left literal.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
