package switchboard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboardrt/switchboard"
)

// msgCheckFresh fails t unless m has a canonical version 4 UUID as id and a
// millisecond timestamp between before and after.
func msgCheckFresh(t *testing.T, m *switchboard.Message, before, after time.Time) {
	t.Helper()
	u, err := uuid.Parse(m.ID)
	if err != nil {
		t.Errorf("ID %q is not a UUID: %v", m.ID, err)
	} else if u.Version() != 4 || u.String() != m.ID {
		t.Errorf("ID %q is not a canonical version 4 UUID", m.ID)
	}
	lo := float64(before.UnixMilli()) / 1000
	hi := float64(after.UnixMilli()) / 1000
	if m.Timestamp < lo || m.Timestamp > hi {
		t.Errorf("Timestamp %f not within [%f, %f]", m.Timestamp, lo, hi)
	}
	frame, err := switchboard.JSONCodec{}.Encode(nil, m)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !regexp.MustCompile(`,"timestamp":\d{10}(\.\d{1,3})?[,}]`).Match(frame) {
		t.Errorf("frame %s lacks a timestamp of millisecond precision", frame)
	}
	var back switchboard.Message
	if err := (switchboard.JSONCodec{}).Decode(frame, &back); err != nil {
		t.Fatalf("Decode(%s): %v", frame, err)
	}
	if back.Type != m.Type || string(back.Payload) != string(m.Payload) || back.ID != m.ID ||
		back.Timestamp != m.Timestamp || back.CorrelationID != m.CorrelationID {
		t.Errorf("round trip of %+v gave %+v", *m, back)
	}
}

// msgPayload returns the payload of m, "" for none.
func msgPayload(m *switchboard.Message) string { return string(m.Payload) }

func TestNewMessage(t *testing.T) {
	type point struct {
		X int    `json:"x"`
		S string `json:"s,omitempty"`
	}
	tests := []struct {
		name    string
		payload any
		want    string
	}{
		{"nil", nil, ""},
		{"struct", point{X: 1}, `{"x":1}`},
		{"pointer", &point{X: 2, S: "<b>&</b>"}, `{"x":2,"s":"<b>&</b>"}`},
		{"nil pointer", (*point)(nil), ""},
		{"map", map[string]any{"b": []int{1, 2}, "a": nil}, `{"a":null,"b":[1,2]}`},
		{"empty map", map[string]int{}, ""},
		{"raw message", json.RawMessage(`{"k": [1, 2]}`), `{"k": [1, 2]}`},
		{"raw message with space around", json.RawMessage(" \n{\"k\":1}\t "), `{"k":1}`},
		{"raw null", json.RawMessage(`null`), ""},
		{"raw empty object", json.RawMessage(`{ }`), ""},
		{"raw empty", json.RawMessage{}, ""},
		{"bytes", []byte(`{"b":true}`), `{"b":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			m, err := switchboard.NewMessage(switchboard.TypeAction, tt.payload)
			after := time.Now()
			if err != nil {
				t.Fatalf("NewMessage: %v", err)
			}
			if m.Type != switchboard.TypeAction {
				t.Errorf("Type = %q", m.Type)
			}
			if got := msgPayload(m); got != tt.want {
				t.Errorf("Payload = %s, want %s", got, tt.want)
			}
			if tt.want == "" && m.Payload != nil {
				t.Errorf("Payload = %q, want nil", m.Payload)
			}
			if m.CorrelationID != "" || m.Topic != "" || m.Seq != 0 || m.Epoch != "" {
				t.Errorf("unexpected fields set: %+v", *m)
			}
			msgCheckFresh(t, m, before, after)
		})
	}
}

func TestNewMessageUniqueIDs(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		m, err := switchboard.NewMessage(switchboard.TypeData, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[m.ID] {
			t.Fatalf("id %s repeated", m.ID)
		}
		seen[m.ID] = true
	}
}

func TestNewMessageErrors(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		payload any
		want    string
	}{
		{"empty type", "", nil, "type is empty"},
		{"array", switchboard.TypeData, []int{1}, "must be a JSON object, not an array"},
		{"string", switchboard.TypeData, "hi", "must be a JSON object, not a string"},
		{"number", switchboard.TypeData, 5, "must be a JSON object, not a number"},
		{"raw array", switchboard.TypeData, json.RawMessage(`[1]`), "must be a JSON object, not an array"},
		{"raw invalid", switchboard.TypeData, json.RawMessage(`{"a":}`), "invalid JSON"},
		{"raw trailing", switchboard.TypeData, json.RawMessage(`{"a":1} {}`), "invalid JSON"},
		{"bytes invalid", switchboard.TypeData, []byte(`{"a"`), "invalid JSON"},
		{"raw invalid UTF-8", switchboard.TypeData, json.RawMessage("{\"a\":\"\xff\"}"), "not valid UTF-8"},
		{"unsupported", switchboard.TypeData, map[string]any{"c": make(chan int)}, "unsupported type"},
		{"marshal error", switchboard.TypeData, map[string]any{"f": func() {}}, "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := switchboard.NewMessage(tt.typ, tt.payload)
			if err == nil {
				t.Fatalf("NewMessage succeeded with %+v", *m)
			}
			if !errors.Is(err, switchboard.ErrBadMessage) {
				t.Errorf("error %v does not wrap ErrBadMessage", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewEvent(t *testing.T) {
	tests := []struct {
		name  string
		event string
		data  any
		want  string
	}{
		{"map", "user.created", map[string]int{"id": 7}, `{"event":"user.created","data":{"id":7}}`},
		{"nil data", "tick", nil, `{"event":"tick","data":null}`},
		{"scalar", "count", 3, `{"event":"count","data":3}`},
		{"raw data", "raw", json.RawMessage(`[1, 2]`), `{"event":"raw","data":[1,2]}`},
		{"escaping", `a"b<c>`, "x&y", `{"event":"a\"b<c>","data":"x&y"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			m, err := switchboard.NewEvent(tt.event, tt.data)
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != switchboard.TypeEvent {
				t.Errorf("Type = %q, want EVENT", m.Type)
			}
			if got := msgPayload(m); got != tt.want {
				t.Errorf("Payload = %s, want %s", got, tt.want)
			}
			msgCheckFresh(t, m, before, after)
		})
	}
	if _, err := switchboard.NewEvent("", 1); !errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("NewEvent with empty name: error %v, want ErrBadMessage", err)
	}
	if _, err := switchboard.NewEvent("e", make(chan int)); !errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("NewEvent with unmarshallable data: error %v, want ErrBadMessage", err)
	}
}

func TestNewData(t *testing.T) {
	before := time.Now()
	m, err := switchboard.NewData("user", map[string]any{"id": 1, "name": "Ada"})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != switchboard.TypeData {
		t.Errorf("Type = %q, want DATA", m.Type)
	}
	if want := `{"resource":"user","data":{"id":1,"name":"Ada"}}`; msgPayload(m) != want {
		t.Errorf("Payload = %s, want %s", m.Payload, want)
	}
	msgCheckFresh(t, m, before, after)

	m, err = switchboard.NewData("list", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"resource":"list","data":null}`; msgPayload(m) != want {
		t.Errorf("Payload = %s, want %s", m.Payload, want)
	}
	if _, err := switchboard.NewData("", 1); !errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("NewData with empty resource: error %v, want ErrBadMessage", err)
	}
}

func TestNewNotification(t *testing.T) {
	tests := []struct {
		name string
		n    switchboard.Notification
		want string
	}{
		{"default level", switchboard.Notification{Title: "Hi", Message: "there"},
			`{"title":"Hi","message":"there","level":"info"}`},
		{"warning", switchboard.Notification{Title: "Disk", Message: "90% full", Level: switchboard.LevelWarning},
			`{"title":"Disk","message":"90% full","level":"warning"}`},
		{"actions", switchboard.Notification{
			Title: "PR", Message: "<b>ready</b>", Level: switchboard.LevelSuccess,
			Actions: []switchboard.NotificationAction{
				{ID: "open", Label: "Open", URL: "https://example.com/pr/1?a=1&b=2"},
				{ID: "dismiss", Label: "Dismiss"},
			},
		}, `{"title":"PR","message":"<b>ready</b>","level":"success","actions":[{"id":"open","label":"Open","url":"https://example.com/pr/1?a=1&b=2"},{"id":"dismiss","label":"Dismiss"}]}`},
		{"error level", switchboard.Notification{Title: "x", Level: switchboard.LevelError},
			`{"title":"x","message":"","level":"error"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			m, err := switchboard.NewNotification(tt.n)
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != switchboard.TypeNotification {
				t.Errorf("Type = %q, want NOTIFICATION", m.Type)
			}
			if got := msgPayload(m); got != tt.want {
				t.Errorf("Payload =\n%s\nwant\n%s", got, tt.want)
			}
			var back switchboard.Notification
			if err := m.DecodePayload(&back); err != nil {
				t.Fatal(err)
			}
			if back.Level == "" || back.Title != tt.n.Title {
				t.Errorf("payload decodes as %+v", back)
			}
			msgCheckFresh(t, m, before, after)
		})
	}
	_, err := switchboard.NewNotification(switchboard.Notification{Title: "x", Level: "fatal"})
	if !errors.Is(err, switchboard.ErrBadMessage) || !strings.Contains(err.Error(), `"fatal"`) {
		t.Errorf("unknown level: error %v, want ErrBadMessage naming the level", err)
	}
}

func TestNewPingPong(t *testing.T) {
	before := time.Now()
	ping := switchboard.NewPing()
	after := time.Now()
	if ping.Type != switchboard.TypePing || ping.Payload != nil || ping.CorrelationID != "" {
		t.Errorf("NewPing() = %+v", *ping)
	}
	msgCheckFresh(t, ping, before, after)
	frame, err := switchboard.JSONCodec{}.Encode(nil, ping)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(frame), `{"type":"PING","payload":{},"id":"`) {
		t.Errorf("ping frame = %s", frame)
	}

	before = time.Now()
	pong := switchboard.NewPong(ping)
	after = time.Now()
	if pong.Type != switchboard.TypePong || pong.Payload != nil || pong.CorrelationID != ping.ID {
		t.Errorf("NewPong() = %+v, want a PONG correlated to %s", *pong, ping.ID)
	}
	if pong.ID == ping.ID {
		t.Error("PONG reuses the PING's id")
	}
	msgCheckFresh(t, pong, before, after)

	// A client's ping may carry any id.
	pong = switchboard.NewPong(&switchboard.Message{Type: switchboard.TypePing, ID: "42"})
	if pong.CorrelationID != "42" {
		t.Errorf("CorrelationID = %q, want 42", pong.CorrelationID)
	}
	if pong = switchboard.NewPong(nil); pong.Type != switchboard.TypePong || pong.CorrelationID != "" {
		t.Errorf("NewPong(nil) = %+v", *pong)
	}
}

func TestNewError(t *testing.T) {
	before := time.Now()
	m := switchboard.NewError(switchboard.CodeUnknownType, `type "FOO" is unknown`+"\n")
	after := time.Now()
	if m.Type != switchboard.TypeError {
		t.Errorf("Type = %q, want ERROR", m.Type)
	}
	if want := `{"code":"unknown_type","message":"type \"FOO\" is unknown\n"}`; msgPayload(m) != want {
		t.Errorf("Payload = %s, want %s", m.Payload, want)
	}
	var p struct{ Code, Message string }
	if err := m.DecodePayload(&p); err != nil || p.Code != "unknown_type" || p.Message != "type \"FOO\" is unknown\n" {
		t.Errorf("payload decodes as %+v, %v", p, err)
	}
	msgCheckFresh(t, m, before, after)
}

func TestNewReply(t *testing.T) {
	req := &switchboard.Message{Type: switchboard.TypeSubscribe, ID: "client-7", Topic: "t"}
	before := time.Now()
	m, err := switchboard.NewReply(req, switchboard.TypeSubscribeSuccess, map[string]string{"topic": "t"})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != switchboard.TypeSubscribeSuccess || m.CorrelationID != "client-7" || msgPayload(m) != `{"topic":"t"}` {
		t.Errorf("NewReply = %+v", *m)
	}
	if m.ID == req.ID || m.Topic != "" {
		t.Errorf("reply copies the request's id or topic: %+v", *m)
	}
	msgCheckFresh(t, m, before, after)

	if _, err := switchboard.NewReply(nil, switchboard.TypeActionResult, nil); err == nil {
		t.Error("NewReply(nil, …) succeeded")
	}
	if _, err := switchboard.NewReply(req, switchboard.TypeActionResult, []int{1}); !errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("NewReply with an array payload: error %v, want ErrBadMessage", err)
	}
	if _, err := switchboard.NewReply(req, "", nil); !errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("NewReply with an empty type: error %v, want ErrBadMessage", err)
	}
}

func TestDecodePayload(t *testing.T) {
	type sub struct {
		Topic string `json:"topic"`
	}
	m := &switchboard.Message{Type: switchboard.TypeSubscribe, Payload: json.RawMessage(`{"topic":"news"}`)}
	var s sub
	if err := m.DecodePayload(&s); err != nil || s.Topic != "news" {
		t.Errorf("DecodePayload = %+v, %v", s, err)
	}

	// No payload: v untouched.
	s = sub{Topic: "keep"}
	if err := (&switchboard.Message{Type: "X"}).DecodePayload(&s); err != nil || s.Topic != "keep" {
		t.Errorf("DecodePayload without payload = %+v, %v", s, err)
	}
	var nilMsg *switchboard.Message
	if err := nilMsg.DecodePayload(&s); err != nil {
		t.Errorf("DecodePayload on nil message: %v", err)
	}

	// Payload of the wrong shape.
	for _, p := range []string{`{"topic":5}`, `[1]`, `"x"`, `{"topic":`} {
		m := &switchboard.Message{Type: "X", Payload: json.RawMessage(p)}
		if err := m.DecodePayload(&s); !errors.Is(err, switchboard.ErrBadMessage) {
			t.Errorf("DecodePayload(%s): error %v, want ErrBadMessage", p, err)
		}
	}

	// A bad target is the caller's bug, not a bad message.
	err := m.DecodePayload(s)
	var inv *json.InvalidUnmarshalError
	if !errors.As(err, &inv) || errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("DecodePayload(non-pointer): error %v, want a bare *json.InvalidUnmarshalError", err)
	}
}

func TestWireNames(t *testing.T) {
	names := map[string]string{
		switchboard.TypeConnect: "CONNECT", switchboard.TypeConnectAck: "CONNECT_ACK",
		switchboard.TypeAuthenticate: "AUTHENTICATE", switchboard.TypeAuthenticateSuccess: "AUTHENTICATE_SUCCESS",
		switchboard.TypeAuthenticateFailure: "AUTHENTICATE_FAILURE", switchboard.TypeSubscribe: "SUBSCRIBE",
		switchboard.TypeSubscribeSuccess: "SUBSCRIBE_SUCCESS", switchboard.TypeSubscribeFailure: "SUBSCRIBE_FAILURE",
		switchboard.TypeUnsubscribe: "UNSUBSCRIBE", switchboard.TypeUnsubscribeAck: "UNSUBSCRIBE_ACK",
		switchboard.TypePing: "PING", switchboard.TypePong: "PONG", switchboard.TypeAction: "ACTION",
		switchboard.TypeActionResult: "ACTION_RESULT", switchboard.TypeData: "DATA", switchboard.TypeEvent: "EVENT",
		switchboard.TypeNotification: "NOTIFICATION", switchboard.TypeError: "ERROR", switchboard.TypeDisconnect: "DISCONNECT",
		string(switchboard.LevelInfo): "info", string(switchboard.LevelSuccess): "success",
		string(switchboard.LevelWarning): "warning", string(switchboard.LevelError): "error",
		string(switchboard.CodeBadMessage): "bad_message", string(switchboard.CodeUnknownType): "unknown_type",
		string(switchboard.CodeUnauthorized): "unauthorized", string(switchboard.CodeForbidden): "forbidden",
		string(switchboard.CodeRateLimited): "rate_limited", string(switchboard.CodeTooLarge): "too_large",
		string(switchboard.CodeInternal): "internal", string(switchboard.CodeTokenExpiring): "token_expiring",
	}
	if len(names) != 31 {
		t.Errorf("%d distinct names, want 31", len(names))
	}
	for got, want := range names {
		if got != want {
			t.Errorf("constant is %q, want %q", got, want)
		}
	}
}

func ExampleNewNotification() {
	m, err := switchboard.NewNotification(switchboard.Notification{
		Title:   "Deploy finished",
		Message: "Version 1.4.2 is live.",
		Level:   switchboard.LevelSuccess,
		Actions: []switchboard.NotificationAction{{ID: "open", Label: "Open", URL: "https://example.com/releases/1.4.2"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Type)
	fmt.Println(string(m.Payload))
	// Output:
	// NOTIFICATION
	// {"title":"Deploy finished","message":"Version 1.4.2 is live.","level":"success","actions":[{"id":"open","label":"Open","url":"https://example.com/releases/1.4.2"}]}
}
