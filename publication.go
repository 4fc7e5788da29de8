package switchboard

import (
	"encoding/json"
	"fmt"
)

// A cluster broker carries publications between nodes as bytes. EncodePublication and
// DecodePublication give every broker the same format, a JSON object:
//
//	{"v":1,"k":"topic","t":"news","m":{…the message, as the JSON codec writes it…}}
//
// with "k" one of "all", "topic", "users", "client", "u" the users of a "users"
// publication and "c" the client ID of a "client" one.

var kindNames = map[TargetKind]string{TargetAll: "all", TargetTopic: "topic", TargetUsers: "users", TargetClient: "client"}

// String returns the kind's name: "all", "topic", "users" or "client".
func (k TargetKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("TargetKind(%d)", uint8(k))
}

type wirePublication struct {
	V int             `json:"v"`
	K string          `json:"k"`
	T string          `json:"t,omitempty"`
	U []string        `json:"u,omitempty"`
	C string          `json:"c,omitempty"`
	M json.RawMessage `json:"m"`
}

// EncodePublication serialises p for a broker.
func EncodePublication(p *Publication) ([]byte, error) {
	if p == nil || p.Message == nil {
		return nil, fmt.Errorf("%w: publication without a message", ErrBadMessage)
	}
	kind, ok := kindNames[p.Kind]
	if !ok {
		return nil, fmt.Errorf("%w: publication of unknown kind %d", ErrBadMessage, p.Kind)
	}
	msg, err := JSONCodec{}.Encode(make([]byte, 0, encodedSizeHint(p.Message)), p.Message)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wirePublication{V: 1, K: kind, T: p.Topic, U: p.Users, C: p.Client, M: msg})
}

// DecodePublication parses what EncodePublication wrote. Errors wrap ErrBadMessage.
func DecodePublication(data []byte) (*Publication, error) {
	var w wirePublication
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: publication: %v", ErrBadMessage, err)
	}
	if w.V != 1 {
		return nil, fmt.Errorf("%w: publication format version %d", ErrBadMessage, w.V)
	}
	p := &Publication{Topic: w.T, Users: w.U, Client: w.C}
	for k, name := range kindNames {
		if name == w.K {
			p.Kind = k
		}
	}
	if p.Kind == 0 {
		return nil, fmt.Errorf("%w: publication of unknown kind %q", ErrBadMessage, w.K)
	}
	p.Message = new(Message)
	if err := (JSONCodec{}).Decode(w.M, p.Message); err != nil {
		return nil, err
	}
	return p, nil
}
