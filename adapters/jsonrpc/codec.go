package jsonrpc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/switchboardrt/switchboard"
)

// SubscriptionID returns the subscription id of topic: "0x" followed by the first 16
// hexadecimal digits (8 bytes) of the SHA-256 hash of the topic name. It is the same for
// every connection and every node, so a publication to a topic is encoded once for all
// its subscribers, and a client can compute it in advance.
func SubscriptionID(topic string) string {
	sum := sha256.Sum256([]byte(topic))
	return "0x" + hex.EncodeToString(sum[:8])
}

// Codec is the switchboard.Codec of JSON-RPC endpoints. It encodes what the manager sends
// to a connection (publications, broadcasts, errors); responses to requests are written by
// the Protocol itself. Its zero value is ready and safe for concurrent use.
//
// Encode writes:
//   - a message with a Topic (a Publish): the push
//     {"jsonrpc":"2.0","method":"subscription","params":{"subscription":SubscriptionID(topic),"result":payload}},
//     with the message's payload as is (null for none);
//   - ERROR (rate_limited, unauthorized, token_expiring, …):
//     {"jsonrpc":"2.0","method":"error","params":{"code":…,"message":…}};
//   - the control types of wire protocol v1 (CONNECT, CONNECT_ACK, AUTHENTICATE*,
//     SUBSCRIBE*, UNSUBSCRIBE*, PING, PONG, ACTION, ACTION_RESULT, DISCONNECT): an error
//     wrapping switchboard.ErrUnsupported, so that the connection is skipped for them (PING
//     becomes a WebSocket ping frame, DISCONNECT is left to the close frame);
//   - any other message (a broadcast DATA, EVENT, NOTIFICATION or application type): the
//     notification {"jsonrpc":"2.0","method":<type in lower case>,"params":payload}.
type Codec struct{}

var _ switchboard.Codec = Codec{}

// Name returns "jsonrpc".
func (Codec) Name() string { return "jsonrpc" }

// Binary returns false: JSON-RPC frames are text frames.
func (Codec) Binary() bool { return false }

// unsupported are the types Encode refuses with switchboard.ErrUnsupported.
var unsupported = map[string]bool{
	switchboard.TypeConnect: true, switchboard.TypeConnectAck: true,
	switchboard.TypeAuthenticate: true, switchboard.TypeAuthenticateSuccess: true, switchboard.TypeAuthenticateFailure: true,
	switchboard.TypeSubscribe: true, switchboard.TypeSubscribeSuccess: true, switchboard.TypeSubscribeFailure: true,
	switchboard.TypeUnsubscribe: true, switchboard.TypeUnsubscribeAck: true,
	switchboard.TypePing: true, switchboard.TypePong: true,
	switchboard.TypeAction: true, switchboard.TypeActionResult: true,
	switchboard.TypeDisconnect: true,
}

// Encode appends the JSON-RPC frame of m to dst; see Codec for the mapping.
func (Codec) Encode(dst []byte, m *switchboard.Message) ([]byte, error) {
	if m == nil || m.Type == "" {
		return dst, fmt.Errorf("%w: cannot encode a message without a type", switchboard.ErrBadMessage)
	}
	payload := []byte(m.Payload)
	if len(payload) == 0 {
		payload = nil
	}
	if m.Topic != "" {
		if unsupported[m.Type] {
			return dst, fmt.Errorf("%w: %s", switchboard.ErrUnsupported, m.Type)
		}
		dst = append(dst, `{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"`...)
		dst = append(dst, SubscriptionID(m.Topic)...)
		dst = append(dst, `","result":`...)
		if payload == nil {
			dst = append(dst, "null"...)
		} else {
			dst = append(dst, payload...)
		}
		return append(dst, "}}"...), nil
	}
	if unsupported[m.Type] {
		return dst, fmt.Errorf("%w: %s", switchboard.ErrUnsupported, m.Type)
	}
	method := strings.ToLower(m.Type)
	dst = append(dst, `{"jsonrpc":"2.0","method":`...)
	q, _ := json.Marshal(method) // a string always marshals
	dst = append(dst, q...)
	dst = append(dst, `,"params":`...)
	if payload == nil {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, payload...)
	}
	return append(dst, '}'), nil
}

// Decode reads one JSON-RPC request object into m: Type is the method, Payload the raw
// params (nil when absent or null), ID the id (a string's value, a number's literal text;
// "" for a notification or a null id). It exists for tools that want messages; the
// Protocol parses requests itself. Errors wrap switchboard.ErrBadMessage.
func (Codec) Decode(frame []byte, m *switchboard.Message) error {
	*m = switchboard.Message{}
	var r request
	if err := json.Unmarshal(frame, &r); err != nil {
		return fmt.Errorf("%w: %v", switchboard.ErrBadMessage, err)
	}
	method, id, perr := r.check()
	if perr != nil {
		return fmt.Errorf("%w: %s", switchboard.ErrBadMessage, perr.Message)
	}
	m.Type = method
	if len(id) > 0 && id[0] == '"' {
		_ = json.Unmarshal(id, &m.ID)
	} else if len(id) > 0 && id[0] != 'n' {
		m.ID = string(id)
	}
	if len(r.Params) > 0 && !bytes.Equal(r.Params, []byte("null")) {
		m.Payload = append(json.RawMessage(nil), r.Params...)
	}
	return nil
}
