package notifier_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/notifier"
)

func TestCodecEncode(t *testing.T) {
	tests := []struct {
		name string
		msg  switchboard.Message
		want string
	}{
		{"object", switchboard.Message{Type: "missing_api_key", Payload: json.RawMessage(`{"service":"etherscan"}`), ID: "x", Timestamp: 1, Topic: "notifier"},
			`{"type":"missing_api_key","data":{"service":"etherscan"}}`},
		{"list", switchboard.Message{Type: "new_evm_token_detected", Payload: json.RawMessage(`[{"a":1},{"a":2}]`)},
			`{"type":"new_evm_token_detected","data":[{"a":1},{"a":2}]}`},
		{"no payload", switchboard.Message{Type: "refresh_balances"}, `{"type":"refresh_balances","data":{}}`},
		{"null payload", switchboard.Message{Type: "refresh_balances", Payload: json.RawMessage(`null`)}, `{"type":"refresh_balances","data":{}}`},
		{"DATA lower-cased", switchboard.Message{Type: switchboard.TypeData, Payload: json.RawMessage(`{"resource":"r","data":1}`)},
			`{"type":"data","data":{"resource":"r","data":1}}`},
		{"NOTIFICATION lower-cased", switchboard.Message{Type: switchboard.TypeNotification, Payload: json.RawMessage(`{"title":"t"}`)},
			`{"type":"notification","data":{"title":"t"}}`},
		{"escaped type", switchboard.Message{Type: "a\"b\n"}, `{"type":"a\"b\n","data":{}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := notifier.Codec{}.Encode([]byte("prefix:"), &tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix:"+tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCodecEncodeUnsupported(t *testing.T) {
	for _, typ := range []string{
		switchboard.TypePing, switchboard.TypePong, switchboard.TypeError, switchboard.TypeDisconnect,
		switchboard.TypeConnectAck, switchboard.TypeSubscribeSuccess, switchboard.TypeAuthenticateFailure,
		switchboard.TypeUnsubscribeAck, switchboard.TypeActionResult, "CUSTOM_SUCCESS",
	} {
		dst, err := notifier.Codec{}.Encode(nil, &switchboard.Message{Type: typ})
		if !errors.Is(err, switchboard.ErrUnsupported) || dst != nil {
			t.Errorf("%s: %q, %v; want ErrUnsupported", typ, dst, err)
		}
	}
	for _, m := range []*switchboard.Message{nil, {}} {
		if _, err := (notifier.Codec{}).Encode(nil, m); !errors.Is(err, switchboard.ErrBadMessage) {
			t.Errorf("Encode(%v): %v, want ErrBadMessage", m, err)
		}
	}
}

func TestCodecDecodeAcceptsAnything(t *testing.T) {
	for _, in := range []string{`{}`, ``, `null`, `hello`, `{"type":"PING"}`, "\xff\xfe", `[1,2]`} {
		var m switchboard.Message
		if err := (notifier.Codec{}).Decode([]byte(in), &m); err != nil || m.Type != notifier.TypeSubscribe {
			t.Errorf("Decode(%q): %+v, %v", in, m, err)
		}
	}
}

func FuzzCodecDecode(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[`, `{"a":1}`, "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m switchboard.Message
		if err := (notifier.Codec{}).Decode(frame, &m); err != nil {
			t.Fatal(err)
		}
		if m.Payload != nil && !json.Valid(m.Payload) {
			t.Fatalf("payload %q is not JSON", m.Payload)
		}
		// What a front end sends re-encodes to a valid two-key frame.
		out, err := notifier.Codec{}.Encode(nil, &m)
		if err != nil || !json.Valid(out) {
			t.Fatalf("Encode: %q, %v", out, err)
		}
	})
}
