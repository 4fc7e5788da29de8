package switchboard

import (
	"errors"
	"reflect"
	"testing"
)

func TestPublicationRoundTrip(t *testing.T) {
	msg, err := NewData("order", map[string]int{"id": 7})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Publication{
		{Kind: TargetAll, Message: msg},
		{Kind: TargetTopic, Topic: "user:42:orders", Message: prepare(msg, "user:42:orders")},
		{Kind: TargetUsers, Users: []string{"42", "7"}, Message: msg},
		{Kind: TargetClient, Client: "c-1", Message: msg},
	} {
		b, err := EncodePublication(p)
		if err != nil {
			t.Fatalf("%v: %v", p.Kind, err)
		}
		got, err := DecodePublication(b)
		if err != nil {
			t.Fatalf("%v: %v (%s)", p.Kind, err, b)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%v: round trip gave %+v, want %+v", p.Kind, got, p)
		}
	}
}

func TestDecodePublicationRejects(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"v":2,"k":"all","m":{"type":"X"}}`, `{"v":1,"k":"nope","m":{"type":"X"}}`, `{"v":1,"k":"all","m":{}}`} {
		if _, err := DecodePublication([]byte(in)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("DecodePublication(%q) = %v, want ErrBadMessage", in, err)
		}
	}
	if _, err := EncodePublication(&Publication{Kind: 9, Message: &Message{Type: "X"}}); !errors.Is(err, ErrBadMessage) {
		t.Errorf("EncodePublication of an unknown kind = %v", err)
	}
}

// FuzzDecodePublication: what arrives from a broker never panics the decoder.
func FuzzDecodePublication(f *testing.F) {
	f.Add([]byte(`{"v":1,"k":"topic","t":"news","m":{"type":"DATA","payload":{"a":1},"id":"x","timestamp":1}}`))
	f.Add([]byte(`{"v":1,"k":"users","u":["1"],"m":{"type":"X"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePublication(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if _, err := EncodePublication(p); err != nil {
			t.Fatalf("re-encoding a decoded publication: %v", err)
		}
	})
}
