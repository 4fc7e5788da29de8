package switchboard

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// Each case: a misbehaving client sends bad input while a bystander, subscribed to a topic,
// receives a steady stream of publications; the misbehaving client gets the documented
// ERROR (and keeps its connection), the bystander misses nothing.
func TestBadInputErrors(t *testing.T) {
	type frame struct {
		binary bool
		data   string
	}
	text := func(s string) frame { return frame{data: s} }
	cases := []struct {
		name  string
		frame frame
		code  ErrorCode
		corr  string // the ERROR's correlation_id; "-": not checked
	}{
		// Not JSON.
		{"truncated object", text(`{"type":"PING"`), CodeBadMessage, ""},
		{"unquoted keys", text(`{type:PING}`), CodeBadMessage, ""},
		{"trailing comma", text(`{"type":"PING",}`), CodeBadMessage, ""},
		{"plain text", text(`hello server`), CodeBadMessage, ""},
		{"empty frame", text(``), CodeBadMessage, ""},
		{"whitespace only", text("  \n "), CodeBadMessage, ""},
		{"NUL byte", text("\x00"), CodeBadMessage, ""},
		{"two objects", text(`{"type":"PING"}{"type":"PING"}`), CodeBadMessage, ""},
		{"object then garbage", text(`{"type":"PING"} x`), CodeBadMessage, ""},
		// JSON, not an object.
		{"array", text(`[{"type":"PING","id":"a"}]`), CodeBadMessage, ""},
		{"empty array", text(`[]`), CodeBadMessage, ""},
		{"string", text(`"PING"`), CodeBadMessage, ""},
		{"number", text(`42`), CodeBadMessage, ""},
		{"null", text(`null`), CodeBadMessage, ""},
		{"boolean", text(`true`), CodeBadMessage, ""},
		// The type.
		{"missing type", text(`{"id":"m1","payload":{}}`), CodeBadMessage, "m1"},
		{"empty type", text(`{"type":"","id":"m2"}`), CodeBadMessage, "m2"},
		{"null type", text(`{"type":null,"id":"m3"}`), CodeBadMessage, "m3"},
		{"numeric type", text(`{"type":5,"id":4}`), CodeBadMessage, "4"},
		{"array type", text(`{"type":["PING"],"id":"m5"}`), CodeBadMessage, "m5"},
		{"object type", text(`{"type":{"name":"PING"},"id":"m6"}`), CodeBadMessage, "m6"},
		{"boolean type", text(`{"id":"m7","type":true}`), CodeBadMessage, "m7"},
		// Other fields of the wrong type.
		{"object id", text(`{"type":"PING","id":{"a":1}}`), CodeBadMessage, ""},
		{"numeric correlation_id", text(`{"type":"PING","id":"m8","correlation_id":5}`), CodeBadMessage, "m8"},
		{"negative seq", text(`{"type":"PING","seq":-1,"id":"m9"}`), CodeBadMessage, "m9"},
		// Unknown types.
		{"unknown type", text(`{"type":"NO_SUCH_TYPE","id":"u1"}`), CodeUnknownType, "u1"},
		{"lower-case control type", text(`{"type":"ping","id":"u2"}`), CodeUnknownType, "u2"},
		{"server-only type", text(`{"type":"SUBSCRIBE_SUCCESS","id":"u3"}`), CodeUnknownType, "u3"},
		// Binary frames.
		{"binary JSON", frame{binary: true, data: `{"type":"PING","id":"b1"}`}, CodeBadMessage, ""},
		{"binary garbage", frame{binary: true, data: "\xff\x00\x01\x02"}, CodeBadMessage, ""},
		// Bad payloads of control messages.
		{"SUBSCRIBE no payload", text(`{"type":"SUBSCRIBE","id":"s1"}`), CodeBadMessage, "s1"},
		{"SUBSCRIBE empty payload", text(`{"type":"SUBSCRIBE","id":"s2","payload":{}}`), CodeBadMessage, "s2"},
		{"SUBSCRIBE empty list", text(`{"type":"SUBSCRIBE","id":"s3","payload":{"subscriptions":[]}}`), CodeBadMessage, "s3"},
		{"SUBSCRIBE numbers", text(`{"type":"SUBSCRIBE","id":"s4","payload":{"subscriptions":[1,2]}}`), CodeBadMessage, "s4"},
		{"SUBSCRIBE mixed list", text(`{"type":"SUBSCRIBE","id":"s5","payload":{"subscriptions":["news",2]}}`), CodeBadMessage, "s5"},
		{"SUBSCRIBE null list", text(`{"type":"SUBSCRIBE","id":"s6","payload":{"subscriptions":null}}`), CodeBadMessage, "s6"},
		{"SUBSCRIBE empty string", text(`{"type":"SUBSCRIBE","id":"s7","payload":{"subscriptions":""}}`), CodeBadMessage, "s7"},
		{"SUBSCRIBE object", text(`{"type":"SUBSCRIBE","id":"s8","payload":{"subscriptions":{"news":true}}}`), CodeBadMessage, "s8"},
		{"SUBSCRIBE payload string", text(`{"type":"SUBSCRIBE","id":"s9","payload":"news"}`), CodeBadMessage, "s9"},
		{"SUBSCRIBE payload array", text(`{"type":"SUBSCRIBE","id":"s10","payload":["news"]}`), CodeBadMessage, "s10"},
		{"UNSUBSCRIBE no list", text(`{"type":"UNSUBSCRIBE","id":"s11","payload":{"topics":["news"]}}`), CodeBadMessage, "s11"},
		{"UNSUBSCRIBE numbers", text(`{"type":"UNSUBSCRIBE","id":"s12","payload":{"subscriptions":[7]}}`), CodeBadMessage, "s12"},
		{"AUTHENTICATE payload string", text(`{"type":"AUTHENTICATE","id":"a1","payload":"token"}`), CodeBadMessage, "a1"},
		{"AUTHENTICATE auth string", text(`{"type":"AUTHENTICATE","id":"a2","payload":{"auth":"token"}}`), CodeBadMessage, "a2"},
		{"AUTHENTICATE numeric token", text(`{"type":"AUTHENTICATE","id":"a3","payload":{"auth":{"token":12345}}}`), CodeBadMessage, "a3"},
		// Invalid UTF-8 inside JSON strings.
		{"invalid UTF-8 in id", text("{\"type\":\"PING\",\"id\":\"\xff\xfe\"}"), CodeBadMessage, "-"},
		{"invalid UTF-8 in type", text("{\"type\":\"PI\xc3\x28NG\"}"), CodeBadMessage, "-"},
		{"invalid UTF-8 in payload", text("{\"type\":\"SUBSCRIBE\",\"id\":\"v1\",\"payload\":{\"subscriptions\":[\"caf\xe9\"]}}"), CodeBadMessage, "-"},
		{"surrogate half in UTF-8", text("{\"type\":\"PING\",\"id\":\"\xed\xa0\x80\"}"), CodeBadMessage, "-"},
		{"overlong encoding", text("{\"type\":\"PING\",\"id\":\"\xc0\xaf\"}"), CodeBadMessage, "-"},
		// Deeply nested payload.
		{"nesting too deep", text(`{"type":"X","payload":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`), CodeBadMessage, ""},
	}
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			watch := wpWatch(t, ts)
			bad := wpDial(t, ts)
			typ := websocket.MessageText
			if tc.frame.binary {
				typ = websocket.MessageBinary
			}
			if err := wpWriteRaw(bad, typ, []byte(tc.frame.data)); err != nil {
				t.Fatal(err)
			}
			watch.tick() // while the bad input is being handled
			w := bad.read()
			wpWantError(t, w, tc.code, tc.corr)
			wpCheckEnvelope(t, w.raw)
			watch.tick()
			// The misbehaving connection is still open and still works.
			wpAlive(t, bad)
			watch.finish()
		})
	}
}

// A frame larger than MaxMessageSize closes that connection with 1009, and only that one.
func TestBadInputOversizedFrame(t *testing.T) {
	ts := startServer(t, Config{MaxMessageSize: 1024})
	watch := wpWatch(t, ts)
	bad := ts.dial()

	// Just under the limit is fine.
	fits := fmt.Sprintf(`{"type":"PING","id":"fits","pad":"%s"}`, strings.Repeat("x", 900))
	bad.send(fits)
	if w := bad.expect(TypePong); w.CorrelationID != "fits" {
		t.Fatalf("frame under the limit: %s", w.raw)
	}

	big := fmt.Sprintf(`{"type":"PING","id":"big","pad":"%s"}`, strings.Repeat("x", 4096-40))
	// The write may fail: the server stops reading after 1024 bytes.
	writeErr := wpWriteRaw(bad, websocket.MessageText, []byte(big))
	watch.tick()
	code, reason, err := wpCloseStatus(bad)
	if err != nil {
		t.Fatalf("no close frame seen (write: %v): %v", writeErr, err)
	}
	if code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d %q, want 1009", code, reason)
	}
	watch.finish()

	// Others still connect and work.
	wpAlive(t, ts.dial())
}

// Invalid topic names are refused with SUBSCRIBE_FAILURE invalid_topic, listing them.
func TestBadInputInvalidTopics(t *testing.T) {
	ts := startServer(t, Config{})
	watch := wpWatch(t, ts)
	bad := ts.dial()
	cases := []struct {
		name  string
		topic string
	}{
		{"empty", ""},
		{"too long", strings.Repeat("a", 201)},
		{"space", "news feed"},
		{"leading space", " news"},
		{"tab", "news\tfeed"},
		{"newline", "news\n"},
		{"NUL", "news\x00"},
		{"accented", "café"},
		{"cyrillic", "новости"},
		{"emoji", "news-😀"},
		{"asterisk", "news.*"},
		{"question mark", "news?"},
		{"quote", `news"`},
		{"backslash", `news\feed`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad.t = t
			id := fmt.Sprintf("it%d", i)
			w := bad.request(TypeSubscribe, map[string]any{"subscriptions": []string{tc.topic}}, id)
			wpWantReason(t, w, TypeSubscribeFailure, "invalid_topic")
			wpCheckEnvelope(t, w.raw)
			p := wpPayload(t, w)
			if got, _ := p["subscriptions"].([]any); len(got) != 1 || got[0] != tc.topic {
				t.Fatalf("subscriptions %v, want [%q]", p["subscriptions"], tc.topic)
			}
			if errs, _ := p["errors"].(map[string]any); errs[tc.topic] != "invalid_topic" {
				t.Fatalf("errors %v", p["errors"])
			}
			watch.tick()
		})
	}
	bad.t = t

	// The longest valid topic and every allowed character are accepted.
	okTopics := []string{strings.Repeat("a", 200), "Az09:._-@/=+,#"}
	if r := bad.subscribe(okTopics...); r.Type != TypeSubscribeSuccess {
		t.Fatalf("valid topics refused: %s", r.raw)
	}
	// All or nothing: a batch with one invalid topic subscribes none of them.
	w := bad.request(TypeSubscribe, map[string]any{"subscriptions": []string{"fine.topic", "bad topic"}}, "batch")
	wpWantReason(t, w, TypeSubscribeFailure, "invalid_topic")
	if got := fmt.Sprint(w.field("subscriptions")); got != "[bad topic]" {
		t.Fatalf("subscriptions %s, want only the invalid one", got)
	}
	if err := ts.m.Publish(t.Context(), "fine.topic", wpData(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.Publish(t.Context(), okTopics[1], wpData(t, 2)); err != nil {
		t.Fatal(err)
	}
	if d := wpNextData(t, bad); wpDataN(d) != 2 {
		t.Fatalf("got %s, want only the publication to the subscribed topic", d.raw)
	}
	wpAlive(t, bad)
	watch.finish()
}

// MaxSubscriptions: a SUBSCRIBE that would exceed it fails as a whole with
// too_many_subscriptions.
func TestBadInputTooManySubscriptions(t *testing.T) {
	ts := startServer(t, Config{MaxSubscriptions: 3})
	watch := wpWatch(t, ts) // the bystander holds one subscription of its own
	c := ts.dial()
	if r := c.subscribe("a", "b"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe a, b: %s", r.raw)
	}
	w := c.request(TypeSubscribe, map[string]any{"subscriptions": []string{"c", "d"}}, "cd")
	wpWantReason(t, w, TypeSubscribeFailure, "too_many_subscriptions")
	wpCheckEnvelope(t, w.raw)
	if got := fmt.Sprint(w.field("subscriptions")); got != "[c d]" {
		t.Fatalf("subscriptions %s, want [c d]", got)
	}
	watch.tick()
	conn := wpConnID(t, ts, c)
	if got := fmt.Sprint(conn.Subscriptions()); got != "[a b]" {
		t.Fatalf("subscriptions after the refused batch: %s, want [a b]", got)
	}
	// Neither c nor d delivers.
	for i, topic := range []string{"c", "d", "b"} {
		if err := ts.m.Publish(t.Context(), topic, wpData(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := wpNextData(t, c); d.Topic != "b" {
		t.Fatalf("got %s, want only the publication to b", d.raw)
	}
	// Topics already held do not count again: [a, c] brings the total to exactly 3.
	if r := c.subscribe("a", "c"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe a, c: %s", r.raw)
	}
	if r := c.subscribe("b"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("resubscribe b at the cap: %s", r.raw)
	}
	wpWantReason(t, c.subscribe("d"), TypeSubscribeFailure, "too_many_subscriptions")
	// Unsubscribing frees a slot.
	c.request(TypeUnsubscribe, map[string]any{"subscriptions": []string{"a"}}, "ua")
	if r := c.subscribe("d"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe d after freeing a slot: %s", r.raw)
	}
	watch.finish()
}

// A flood: messages over MessageRate are dropped with ERROR rate_limited; sustained abuse
// closes the connection with 1008. The bystander is not affected.
func TestBadInputFlood(t *testing.T) {
	ts := startServer(t, Config{MessageRate: 5, MessageBurst: 5, RateLimitStrikes: 5})
	watch := wpWatch(t, ts)
	bad := ts.dial()
	const n = 60
	for i := 0; i < n; i++ {
		if err := wpWriteRaw(bad, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"PING","id":"f%d"}`, i))); err != nil {
			break // the server may have closed already
		}
		if i == n/2 {
			watch.tick()
		}
	}
	code, _, frames := bad.closed()
	if code != ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	pongs := map[string]bool{}
	limited := 0
	var last wire
	for _, f := range frames {
		switch f.Type {
		case TypePong:
			pongs[f.CorrelationID] = true
		case TypeError:
			wpWantError(t, f, CodeRateLimited, "")
			limited++
		}
		last = f
	}
	for i := 0; i < 5; i++ { // the burst
		if !pongs[fmt.Sprintf("f%d", i)] {
			t.Fatalf("PING f%d within the burst was not answered (frames %v)", i, frames)
		}
	}
	if len(pongs) >= n {
		t.Fatalf("every PING was answered; no rate limit")
	}
	if limited == 0 {
		t.Fatalf("no ERROR rate_limited before the close")
	}
	if last.Type != TypeDisconnect || last.field("code") != 1008.0 {
		t.Fatalf("last frame %s, want DISCONNECT 1008", last.raw)
	}
	watch.finish()
	wpAlive(t, ts.dial())
}

// Many garbage frames in a row on one connection, then a PING: every frame gets its ERROR,
// in order, and the PING its PONG.
func TestBadInputGarbageInARow(t *testing.T) {
	garbage := []struct {
		binary bool
		data   string
		code   ErrorCode
	}{
		{false, `{`, CodeBadMessage},
		{false, `}`, CodeBadMessage},
		{false, `[]`, CodeBadMessage},
		{false, `null`, CodeBadMessage},
		{false, `"x"`, CodeBadMessage},
		{false, `-1e999`, CodeBadMessage},
		{false, ``, CodeBadMessage},
		{false, "\xff\xfe\xfd", CodeBadMessage},
		{false, `{"type":1}`, CodeBadMessage},
		{false, `{"type":""}`, CodeBadMessage},
		{false, `{"type":"\u0000"}`, CodeUnknownType},
		{false, `{"type":"NOPE"}`, CodeUnknownType},
		{false, `{"type":"SUBSCRIBE","payload":{"subscriptions":[{}]}}`, CodeBadMessage},
		{false, `{"type":"UNSUBSCRIBE","payload":7}`, CodeBadMessage},
		{false, `{"type":"AUTHENTICATE","payload":[]}`, CodeBadMessage},
		{true, `{"type":"PING"}`, CodeBadMessage},
		{true, "", CodeBadMessage},
		{false, `{"type":"PING","id":[]}`, CodeBadMessage},
		{false, strings.Repeat(`{"a":`, 100), CodeBadMessage},
		{false, `{"type":"PING"} {"type":"PING"}`, CodeBadMessage},
		{false, "{\"type\":\"PING\",\"id\":\"\xc3\"}", CodeBadMessage},
		{false, `{"type":"DATA","payload":{"x":1}}`, CodeUnknownType},
	}
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	watch := wpWatch(t, ts)
	c := ts.dial()
	for _, g := range garbage {
		typ := websocket.MessageText
		if g.binary {
			typ = websocket.MessageBinary
		}
		if err := wpWriteRaw(c, typ, []byte(g.data)); err != nil {
			t.Fatal(err)
		}
	}
	watch.tick()
	c.send(`{"type":"PING","id":"after-garbage"}`)
	for i, g := range garbage {
		w := c.read()
		if w.Type != TypeError || w.field("code") != string(g.code) {
			t.Fatalf("frame %d %q: got %s, want ERROR %s", i, g.data, w.raw, g.code)
		}
		wpCheckEnvelope(t, w.raw)
	}
	if w := c.read(); w.Type != TypePong || w.CorrelationID != "after-garbage" {
		t.Fatalf("after the garbage: %s, want PONG", w.raw)
	}
	if r := c.subscribe("still.works"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe after the garbage: %s", r.raw)
	}
	watch.finish()
}
