package switchboard

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/google/uuid"
)

// ---------------------------------------------------------------------------
// Helpers shared by protocol_test.go, auth_test.go, badinput_test.go,
// state_test.go and router_test.go. They are prefixed with "wp" (wire
// protocol) to stay clear of helpers in other test files.
// ---------------------------------------------------------------------------

// wpPayload decodes the payload of w as a JSON object.
func wpPayload(t testing.TB, w wire) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Payload, &m); err != nil || m == nil {
		t.Fatalf("payload of %s is not a JSON object: %v", w.raw, err)
	}
	return m
}

// wpWantType fails unless w is of type typ.
func wpWantType(t testing.TB, w wire, typ string) {
	t.Helper()
	if w.Type != typ {
		t.Fatalf("got %s, want a %s", w.raw, typ)
	}
}

// wpWantError fails unless w is an ERROR with the given code; corr, when not "-", is the
// correlation_id it must carry.
func wpWantError(t testing.TB, w wire, code ErrorCode, corr string) {
	t.Helper()
	if w.Type != TypeError {
		t.Fatalf("got %s, want ERROR %s", w.raw, code)
	}
	if got := w.field("code"); got != string(code) {
		t.Fatalf("ERROR code %v, want %q: %s", got, code, w.raw)
	}
	if msg, _ := w.field("message").(string); msg == "" {
		t.Errorf("ERROR without a message: %s", w.raw)
	}
	if corr != "-" && w.CorrelationID != corr {
		t.Fatalf("ERROR correlation_id %q, want %q: %s", w.CorrelationID, corr, w.raw)
	}
}

// wpWantReason fails unless w is of type typ with payload.reason == reason.
func wpWantReason(t testing.TB, w wire, typ, reason string) {
	t.Helper()
	if w.Type != typ || w.field("reason") != reason {
		t.Fatalf("got %s, want %s with reason %q", w.raw, typ, reason)
	}
}

var wpSeq atomic.Int64

// wpAlive sends PING and fails unless the matching PONG comes back.
func wpAlive(t testing.TB, c *client) {
	t.Helper()
	id := fmt.Sprintf("alive-%d", wpSeq.Add(1))
	w := c.request(TypePing, nil, id)
	if w.Type != TypePong {
		t.Fatalf("PING %s answered with %s, want PONG", id, w.raw)
	}
}

// wpDial dials a client that belongs to t (which may be a subtest of the test that started
// ts): its failures are t's, and it is closed when t ends.
func wpDial(t testing.TB, ts *testServer, opts ...dialOpts) *client {
	t.Helper()
	c := ts.dial(opts...)
	c.t = t
	t.Cleanup(func() { _ = c.ws.CloseNow() })
	return c
}

// wpWriteRaw writes one frame of the given type, returning the write error (for floods,
// where the server may already be closing).
func wpWriteRaw(c *client, typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.ws.Write(ctx, typ, b)
}

// wpCheckEnvelope checks the rules for everything the server sends: one JSON object per
// text frame, with a string type, a payload object, a UUID id and a timestamp in seconds.
func wpCheckEnvelope(t testing.TB, raw []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("server frame is not a JSON object: %v: %s", err, raw)
	}
	if rest := bytes.TrimSpace(raw[dec.InputOffset():]); len(rest) != 0 {
		t.Fatalf("server frame has more than one JSON value: %s", raw)
	}
	var typ string
	if err := json.Unmarshal(obj["type"], &typ); err != nil || typ == "" {
		t.Fatalf("server frame without a string type: %s", raw)
	}
	p := bytes.TrimSpace(obj["payload"])
	if len(p) == 0 || p[0] != '{' {
		t.Fatalf("%s frame without a payload object: %s", typ, raw)
	}
	var pm map[string]any
	if err := json.Unmarshal(p, &pm); err != nil {
		t.Fatalf("%s payload is not an object: %v: %s", typ, err, raw)
	}
	var id string
	if err := json.Unmarshal(obj["id"], &id); err != nil || id == "" {
		t.Fatalf("%s frame without a string id: %s", typ, raw)
	}
	if _, err := uuid.Parse(id); err != nil {
		t.Errorf("%s frame id %q is not a UUID: %s", typ, id, raw)
	}
	var ts float64
	if err := json.Unmarshal(obj["timestamp"], &ts); err != nil {
		t.Fatalf("%s frame without a numeric timestamp: %s", typ, raw)
	}
	// Seconds since the epoch (not milliseconds): within a day of the local clock.
	if now := float64(time.Now().Unix()); math.Abs(ts-now) > 86400 {
		t.Fatalf("%s frame timestamp %v is not seconds since the epoch (now %v): %s", typ, ts, now, raw)
	}
}

// wpCloseStatus reads until the connection ends and returns the close frame's code and
// reason, or the error when the connection ended without one.
func wpCloseStatus(c *client) (websocket.StatusCode, string, error) {
	for {
		_, err := c.tryRead(10 * time.Second)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason, nil
			}
			return -1, "", err
		}
	}
}

// wpSignHS256 signs claims as an HS256 JWT with secret, for tokens auth.NewHMACToken
// cannot make (expired, no sub, …).
func wpSignHS256(secret []byte, header, claims map[string]any) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	if header == nil {
		header = map[string]any{"alg": "HS256", "typ": "JWT"}
	}
	signing := enc(header) + "." + enc(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// wpTokenClaims decodes the claims of a JWT without verifying it.
func wpTokenClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// wpData builds a DATA message whose payload.data.n is n.
func wpData(t testing.TB, n int) *Message {
	t.Helper()
	m, err := NewData("tick", map[string]any{"n": n})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wpDataN returns payload.data.n of a DATA frame, or -1.
func wpDataN(w wire) int {
	var p struct {
		Data struct {
			N *int `json:"n"`
		} `json:"data"`
	}
	if w.Type != TypeData || json.Unmarshal(w.Payload, &p) != nil || p.Data.N == nil {
		return -1
	}
	return *p.Data.N
}

// wpNextData reads frames until a DATA arrives (skipping server PINGs) and returns it.
func wpNextData(t testing.TB, c *client) wire {
	t.Helper()
	return c.expect(TypeData)
}

// wpWatcher is a bystander: a second client subscribed to a topic that receives a steady
// stream of publications while another client misbehaves. finish checks that every
// publication arrived, in order.
type wpWatcher struct {
	t     testing.TB
	ts    *testServer
	c     *client
	topic string

	pubMu  sync.Mutex // orders n with the publish
	n      int
	pubErr error

	mu      sync.Mutex
	got     []int
	readErr error

	stop    chan struct{}
	pubDone chan struct{}
	rdDone  chan struct{}
}

const wpFinalTick = 1 << 30

func wpWatch(t testing.TB, ts *testServer) *wpWatcher {
	t.Helper()
	w := &wpWatcher{t: t, ts: ts, c: wpDial(t, ts), topic: "bystander.feed",
		stop: make(chan struct{}), pubDone: make(chan struct{}), rdDone: make(chan struct{})}
	if r := w.c.subscribe(w.topic); r.Type != TypeSubscribeSuccess {
		t.Fatalf("bystander subscribe: %s", r.raw)
	}
	// One publication before the misbehaviour starts, received synchronously.
	w.tick()
	if d := wpNextData(t, w.c); wpDataN(d) != 1 || d.Topic != w.topic {
		t.Fatalf("bystander: first publication %s", d.raw)
	}
	w.got = append(w.got, 1)
	go w.read()
	go func() {
		defer close(w.pubDone)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
				w.tick()
			}
		}
	}()
	return w
}

// tick publishes the next numbered message to the bystander's topic.
func (w *wpWatcher) tick() {
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	if w.pubErr != nil {
		return
	}
	w.n++
	msg, err := NewData("tick", map[string]any{"n": w.n})
	if err == nil {
		err = w.ts.m.Publish(context.Background(), w.topic, msg)
	}
	if err != nil {
		w.pubErr = err
	}
}

func (w *wpWatcher) read() {
	defer close(w.rdDone)
	for {
		f, err := w.c.tryRead(10 * time.Second)
		if err != nil {
			w.mu.Lock()
			w.readErr = err
			w.mu.Unlock()
			return
		}
		if f.Type == TypePing {
			b, _ := json.Marshal(map[string]any{"type": TypePong, "correlation_id": f.ID})
			_ = wpWriteRaw(w.c, websocket.MessageText, b)
			continue
		}
		n := wpDataN(f)
		if n == wpFinalTick {
			return
		}
		w.mu.Lock()
		if n < 0 || f.Topic != w.topic {
			w.readErr = fmt.Errorf("bystander got unexpected frame %s", f.raw)
			w.mu.Unlock()
			return
		}
		w.got = append(w.got, n)
		w.mu.Unlock()
	}
}

// finish stops the stream and checks that the bystander received every publication in
// order, and that it is still connected.
func (w *wpWatcher) finish() {
	t := w.t
	t.Helper()
	close(w.stop)
	<-w.pubDone
	w.tick() // one more after the misbehaviour is over
	w.pubMu.Lock()
	want, pubErr := w.n, w.pubErr
	final, _ := NewData("tick", map[string]any{"n": wpFinalTick})
	if pubErr == nil {
		pubErr = w.ts.m.Publish(context.Background(), w.topic, final)
	}
	w.pubMu.Unlock()
	if pubErr != nil {
		t.Fatalf("bystander: publish: %v", pubErr)
	}
	select {
	case <-w.rdDone:
	case <-time.After(15 * time.Second):
		t.Fatal("bystander: reader did not finish")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.readErr != nil {
		t.Fatalf("bystander stopped receiving: %v (got %d of %d publications)", w.readErr, len(w.got), want)
	}
	if len(w.got) != want {
		t.Fatalf("bystander got %d publications, want %d", len(w.got), want)
	}
	for i, n := range w.got {
		if n != i+1 {
			t.Fatalf("bystander publication %d has n=%d, want %d", i, n, i+1)
		}
	}
	wpAlive(t, w.c)
}

// ---------------------------------------------------------------------------
// Tests of wire protocol v1.
// ---------------------------------------------------------------------------

func TestProtocolConnectAck(t *testing.T) {
	for _, requireAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("RequireAuth=%v", requireAuth), func(t *testing.T) {
			connected := make(chan *Conn, 1)
			ts := startServer(t, Config{
				Authenticator: newJWT(t),
				RequireAuth:   requireAuth,
				PingInterval:  7 * time.Second,
				OnConnect:     func(c *Conn) { connected <- c },
			})
			c := ts.dial()
			srv := <-connected
			ack := c.request(TypeConnect, map[string]any{}, "connect-req-1")
			wpWantType(t, ack, TypeConnectAck)
			wpCheckEnvelope(t, ack.raw)
			if ack.CorrelationID != "connect-req-1" {
				t.Fatalf("correlation_id %q, want connect-req-1", ack.CorrelationID)
			}
			p := wpPayload(t, ack)
			id, _ := p["client_id"].(string)
			if id == "" || id != srv.ID() {
				t.Fatalf("client_id %q, want the server's connection ID %q", id, srv.ID())
			}
			if got := ts.m.Conn(id); got != srv {
				t.Fatalf("m.Conn(client_id) = %p, want the connection %p", got, srv)
			}
			if p["requires_auth"] != requireAuth {
				t.Fatalf("requires_auth = %v, want %v", p["requires_auth"], requireAuth)
			}
			if p["authenticated"] != false {
				t.Fatalf("authenticated = %v, want false", p["authenticated"])
			}
			if _, ok := p["user_id"]; ok {
				t.Fatalf("user_id on an anonymous connection: %s", ack.raw)
			}
			if p["ping_interval"] != 7.0 {
				t.Fatalf("ping_interval = %v, want 7", p["ping_interval"])
			}
		})
	}
}

// CONNECT is a courtesy: a client that never sends it can authenticate, subscribe and
// receive, and never gets an unprompted CONNECT_ACK.
func TestProtocolConnectIsOptional(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true})
	c := ts.dial()
	if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("authenticate without CONNECT: %s", r.raw)
	}
	if r := c.subscribe("news"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe without CONNECT: %s", r.raw)
	}
	if err := ts.m.Publish(context.Background(), "news", wpData(t, 1)); err != nil {
		t.Fatal(err)
	}
	w := c.read()
	if w.Type == TypeConnectAck {
		t.Fatalf("unprompted CONNECT_ACK: %s", w.raw)
	}
	if wpDataN(w) != 1 || w.Topic != "news" {
		t.Fatalf("got %s, want the publication", w.raw)
	}
}

// Any client id is accepted and echoed as correlation_id; a JSON number keeps its text.
func TestProtocolClientIDFormats(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	cases := []struct {
		name  string
		frame string
		want  string
	}{
		{"hex32", `{"type":"PING","id":"0123456789abcdef0123456789abcdef"}`, "0123456789abcdef0123456789abcdef"},
		{"digit string", `{"type":"PING","id":"5"}`, "5"},
		{"uuid", `{"type":"PING","id":"550e8400-e29b-41d4-a716-446655440000"}`, "550e8400-e29b-41d4-a716-446655440000"},
		{"number", `{"type":"PING","id":7}`, "7"},
		{"big number", `{"type":"PING","id":12345678901234567890}`, "12345678901234567890"},
		{"decimal", `{"type":"PING","id":1.50}`, "1.50"},
		{"punctuation", `{"type":"PING","id":"req#1 / ü"}`, "req#1 / ü"},
		{"no id", `{"type":"PING"}`, ""},
		{"null id", `{"type":"PING","id":null}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.send(tc.frame)
			w := c.expect(TypePong)
			wpCheckEnvelope(t, w.raw)
			if w.CorrelationID != tc.want {
				t.Fatalf("correlation_id %q, want %q: %s", w.CorrelationID, tc.want, w.raw)
			}
			if tc.want == "" && bytes.Contains(w.raw, []byte(`"correlation_id"`)) {
				t.Fatalf("reply to a request without id carries a correlation_id: %s", w.raw)
			}
		})
	}
}

// Liberal in what it accepts: no payload, null or empty payload, and unknown fields.
func TestProtocolLiberalInput(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	cases := []struct {
		name     string
		frame    string
		wantType string
		corr     string
	}{
		{"PING without payload", `{"type":"PING","id":"l1"}`, TypePong, "l1"},
		{"PING null payload", `{"type":"PING","payload":null,"id":"l2"}`, TypePong, "l2"},
		{"PING empty payload", `{"type":"PING","payload":{},"id":"l3"}`, TypePong, "l3"},
		{"PING extra fields", `{"type":"PING","id":"l4","foo":1,"bar":{"x":[1,2,{"y":null}]},"seq":null,"epoch":null,"version":"2.0"}`, TypePong, "l4"},
		{"PING timestamp and whitespace", " \n\t{ \"type\" : \"PING\" , \"id\" : \"l5\", \"timestamp\": 1619712345.123 }\n ", TypePong, "l5"},
		{"PING timestamp not a number", `{"type":"PING","id":"l6","timestamp":"yesterday"}`, TypePong, "l6"},
		{"CONNECT without payload", `{"type":"CONNECT","id":"l7"}`, TypeConnectAck, "l7"},
		{"SUBSCRIBE extra fields", `{"type":"SUBSCRIBE","id":"l8","extra":true,"payload":{"subscriptions":["news"],"since":0,"options":{"a":1}}}`, TypeSubscribeSuccess, "l8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.send(tc.frame)
			w := c.read()
			if w.Type != tc.wantType {
				t.Fatalf("got %s, want %s", w.raw, tc.wantType)
			}
			wpCheckEnvelope(t, w.raw)
			if w.CorrelationID != tc.corr {
				t.Fatalf("correlation_id %q, want %q", w.CorrelationID, tc.corr)
			}
		})
	}
}

func TestProtocolPingPong(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("ping-%d", i)
		w := c.request(TypePing, map[string]any{}, id)
		wpWantType(t, w, TypePong)
		wpCheckEnvelope(t, w.raw)
		if w.CorrelationID != id {
			t.Fatalf("PONG correlation_id %q, want %q", w.CorrelationID, id)
		}
	}
}

// The server PINGs every PingInterval, each PING with its own id; a client that answers
// with PONG stays connected, one that does not is closed with 1008.
func TestProtocolServerPing(t *testing.T) {
	ts := startServer(t, Config{PingInterval: 100 * time.Millisecond, PongTimeout: time.Second})
	answering := ts.dial()
	silent := ts.dial()

	seen := map[string]bool{}
	for i := 0; i < 8; i++ {
		w := answering.read()
		wpWantType(t, w, TypePing)
		wpCheckEnvelope(t, w.raw)
		if w.ID == "" || seen[w.ID] {
			t.Fatalf("server PING %d without a fresh id: %s", i, w.raw)
		}
		seen[w.ID] = true
		answering.send(map[string]any{"type": TypePong, "id": fmt.Sprintf("pong-%d", i), "correlation_id": w.ID})
	}

	// The silent client got PINGs too, and was closed for not answering.
	code, reason, frames := silent.closed()
	if code != ClosePolicyViolation {
		t.Fatalf("silent client closed with %d %q, want 1008", code, reason)
	}
	if len(frames) == 0 || frames[0].Type != TypePing {
		t.Fatalf("silent client frames %v, want PINGs first", frames)
	}

	// The answering one has lived through the same deadlines and more.
	for i := 0; i < 3; i++ {
		w := answering.read()
		wpWantType(t, w, TypePing)
		answering.send(map[string]any{"type": TypePong, "correlation_id": w.ID})
	}
	wpAlive(t, answering)
}

func TestProtocolSubscribe(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()

	cases := []struct {
		name    string
		payload any
		want    []any
	}{
		{"list", map[string]any{"subscriptions": []string{"news", "sport"}}, []any{"news", "sport"}},
		{"already subscribed", map[string]any{"subscriptions": []string{"news"}}, []any{"news"}},
		{"mix of old and new", map[string]any{"subscriptions": []string{"sport", "weather"}}, []any{"sport", "weather"}},
		{"single string", map[string]any{"subscriptions": "markets"}, []any{"markets"}},
		{"single string again", map[string]any{"subscriptions": "markets"}, []any{"markets"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			id := fmt.Sprintf("s%d", i)
			w := c.request(TypeSubscribe, tc.payload, id)
			wpWantType(t, w, TypeSubscribeSuccess)
			wpCheckEnvelope(t, w.raw)
			got, _ := wpPayload(t, w)["subscriptions"].([]any)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("subscriptions %v, want %v", got, tc.want)
			}
		})
	}
	c.t = t

	// Every topic delivers exactly once, with "topic" set, even the ones subscribed twice.
	for i, topic := range []string{"news", "sport", "weather", "markets"} {
		if err := ts.m.Publish(context.Background(), topic, wpData(t, i)); err != nil {
			t.Fatal(err)
		}
		w := wpNextData(t, c)
		wpCheckEnvelope(t, w.raw)
		if w.Topic != topic || wpDataN(w) != i {
			t.Fatalf("publication to %s arrived as %s", topic, w.raw)
		}
	}
	srv := ts.m.Conn(c.request(TypeConnect, nil, "who").field("client_id").(string))
	if got := len(srv.Subscriptions()); got != 4 {
		t.Fatalf("connection has %d subscriptions %v, want 4", got, srv.Subscriptions())
	}
}

// Publications carry their topic; each kind of server message is sent as documented.
func TestProtocolPublicationsCarryTopic(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	c.subscribe("orders:feed")
	ev, err := NewEvent("order_created", map[string]any{"item": "lamp"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNotification(Notification{Title: "Order shipped", Message: "#1042 is on its way", Level: LevelSuccess})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []*Message{wpData(t, 9), ev, n} {
		if err := ts.m.Publish(context.Background(), "orders:feed", msg); err != nil {
			t.Fatal(err)
		}
		if msg.Topic != "" {
			t.Fatalf("Publish modified the caller's message: topic %q", msg.Topic)
		}
		w := c.read()
		wpCheckEnvelope(t, w.raw)
		if w.Type != msg.Type || w.Topic != "orders:feed" {
			t.Fatalf("published %s, got %s", msg.Type, w.raw)
		}
		p := wpPayload(t, w)
		switch msg.Type {
		case TypeData:
			if _, ok := p["data"]; !ok {
				t.Fatalf("DATA without payload.data: %s", w.raw)
			}
		case TypeEvent:
			if p["event"] != "order_created" {
				t.Fatalf("EVENT payload %s", w.raw)
			}
		case TypeNotification:
			if p["title"] != "Order shipped" || p["message"] != "#1042 is on its way" || p["level"] != "success" {
				t.Fatalf("NOTIFICATION payload %s", w.raw)
			}
		}
	}
	// A broadcast (not to a topic) has no topic field.
	if err := ts.m.Broadcast(context.Background(), wpData(t, 2)); err != nil {
		t.Fatal(err)
	}
	w := c.read()
	if wpDataN(w) != 2 || w.Topic != "" || bytes.Contains(w.raw, []byte(`"topic"`)) {
		t.Fatalf("broadcast frame %s, want no topic", w.raw)
	}
}

func TestProtocolUnsubscribe(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	if r := c.subscribe("alpha", "beta"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe: %s", r.raw)
	}
	w := c.request(TypeUnsubscribe, map[string]any{"subscriptions": []string{"alpha"}}, "u1")
	wpWantType(t, w, TypeUnsubscribeAck)
	wpCheckEnvelope(t, w.raw)
	if w.CorrelationID != "u1" {
		t.Fatalf("UNSUBSCRIBE_ACK correlation_id %q, want u1", w.CorrelationID)
	}
	if got, _ := wpPayload(t, w)["subscriptions"].([]any); fmt.Sprint(got) != "[alpha]" {
		t.Fatalf("UNSUBSCRIBE_ACK subscriptions %v, want [alpha]", got)
	}

	// Publish to the dropped topic, then to the kept one: only the second arrives.
	if err := ts.m.Publish(context.Background(), "alpha", wpData(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.Publish(context.Background(), "beta", wpData(t, 2)); err != nil {
		t.Fatal(err)
	}
	d := wpNextData(t, c)
	if d.Topic != "beta" || wpDataN(d) != 2 {
		t.Fatalf("after UNSUBSCRIBE alpha, got %s, want the beta publication", d.raw)
	}

	// Unsubscribing from a topic never subscribed (or twice) is acknowledged too; a single
	// string works as for SUBSCRIBE.
	for i, p := range []any{
		map[string]any{"subscriptions": []string{"alpha"}},
		map[string]any{"subscriptions": []string{"never"}},
		map[string]any{"subscriptions": "beta"},
	} {
		w := c.request(TypeUnsubscribe, p, fmt.Sprintf("u-again-%d", i))
		wpWantType(t, w, TypeUnsubscribeAck)
	}
	if err := ts.m.Publish(context.Background(), "beta", wpData(t, 3)); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.Broadcast(context.Background(), wpData(t, 4)); err != nil {
		t.Fatal(err)
	}
	if d := wpNextData(t, c); wpDataN(d) != 4 {
		t.Fatalf("after UNSUBSCRIBE beta, got %s, want only the broadcast", d.raw)
	}
	if st := ts.m.Stats(); st.Subscriptions != 0 {
		t.Fatalf("Stats.Subscriptions = %d after unsubscribing everything", st.Subscriptions)
	}
}

// DISCONNECT from the client is the one case where the server closes with 1000.
func TestProtocolClientDisconnect(t *testing.T) {
	type result struct {
		code   int
		reason string
	}
	cases := []struct {
		name       string
		frame      string
		wantReason string
	}{
		{"with reason", `{"type":"DISCONNECT","payload":{"code":1000,"reason":"bye"},"id":"d1"}`, "bye"},
		{"without payload", `{"type":"DISCONNECT"}`, "client disconnected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan result, 1)
			ts := startServer(t, Config{
				Authenticator: newJWT(t),
				RequireAuth:   true, // DISCONNECT needs no authentication
				OnDisconnect:  func(c *Conn, code int, reason string) { done <- result{code, reason} },
			})
			c := ts.dial()
			wpAlive(t, c)
			c.send(tc.frame)
			code, reason, frames := c.closed()
			if code != websocket.StatusNormalClosure {
				t.Fatalf("close code %d %q, want 1000", code, reason)
			}
			for _, f := range frames {
				if f.Type != TypePing {
					t.Fatalf("unexpected frame before the close: %s", f.raw)
				}
			}
			select {
			case r := <-done:
				if r.code != CloseNormal || r.reason != tc.wantReason {
					t.Fatalf("OnDisconnect(%d, %q), want (1000, %q)", r.code, r.reason, tc.wantReason)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("OnDisconnect not called")
			}
		})
	}
}

func TestProtocolAction(t *testing.T) {
	ts := startServer(t, Config{})
	ts.m.Handle(TypeAction, func(ctx context.Context, c *Conn, msg *Message) error {
		var req struct {
			Action  string `json:"action"`
			OrderID int    `json:"order_id"`
		}
		if err := msg.DecodePayload(&req); err != nil {
			return err
		}
		return c.Reply(msg, TypeActionResult, map[string]any{"ok": true, "action": req.Action, "order_id": req.OrderID})
	})
	c := ts.dial()
	w := c.request(TypeAction, map[string]any{"action": "cancel", "order_id": 1042}, "act-6")
	wpWantType(t, w, TypeActionResult)
	wpCheckEnvelope(t, w.raw)
	if w.CorrelationID != "act-6" {
		t.Fatalf("ACTION_RESULT correlation_id %q, want act-6", w.CorrelationID)
	}
	p := wpPayload(t, w)
	if p["ok"] != true || p["action"] != "cancel" || p["order_id"] != 1042.0 {
		t.Fatalf("ACTION_RESULT payload %s", w.raw)
	}

	// Without a handler, ACTION is an unknown type.
	ts2 := startServer(t, Config{})
	c2 := ts2.dial()
	wpWantError(t, c2.request(TypeAction, map[string]any{"action": "x"}, "act-7"), CodeUnknownType, "act-7")
}

// Every frame of a long session, of every type the server sends, is one JSON object in a
// text frame with a payload object, a UUID id and a timestamp.
func TestProtocolServerFramesAreStrict(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), PingInterval: 50 * time.Millisecond})
	ts.m.Handle(TypeAction, func(ctx context.Context, c *Conn, msg *Message) error {
		return c.Reply(msg, TypeActionResult, nil) // no payload: still sent as {}
	})
	ts.m.Handle("FAIL", func(ctx context.Context, c *Conn, msg *Message) error {
		return Errorf(CodeForbidden, "no")
	})
	c := ts.dial()
	seen := map[string]bool{}

	// recv reads one frame, checking it, answering server PINGs.
	recv := func() wire {
		t.Helper()
		for {
			w := c.read()
			wpCheckEnvelope(t, w.raw)
			seen[w.Type] = true
			if w.Type == TypePing {
				c.send(map[string]any{"type": TypePong, "correlation_id": w.ID})
				continue
			}
			return w
		}
	}
	req := func(typ string, payload any, id string) wire {
		t.Helper()
		c.send(map[string]any{"type": typ, "payload": payload, "id": id})
		for {
			if w := recv(); w.CorrelationID == id {
				return w
			}
		}
	}
	req(TypeConnect, nil, "f1")
	req(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": "nope"}}, "f2")
	req(TypeAuthenticate, map[string]any{"token": token(t, "42", time.Hour)}, "f3")
	req(TypePing, nil, "f4")
	req(TypeSubscribe, map[string]any{"subscriptions": []string{"topic.a"}}, "f5")
	req(TypeSubscribe, map[string]any{"subscriptions": []string{"user:7"}}, "f6")
	req("NOPE", nil, "f7")
	req(TypeAction, nil, "f8")
	req("FAIL", nil, "f9")
	req(TypeUnsubscribe, map[string]any{"subscriptions": []string{"nothing"}}, "f10")
	req(TypeSubscribe, map[string]any{}, "f11") // ERROR bad_message
	ev, _ := NewEvent("e", nil)
	nt, _ := NewNotification(Notification{Title: "t", Message: "m"})
	own := &Message{Type: "CUSTOM_PUSH"} // no id, no timestamp, no payload: the server adds them
	for _, msg := range []*Message{wpData(t, 1), ev, nt, own} {
		if err := ts.m.Publish(context.Background(), "topic.a", msg); err != nil {
			t.Fatal(err)
		}
		if w := recv(); w.Type != msg.Type {
			t.Fatalf("got %s, want %s", w.raw, msg.Type)
		}
	}
	if err := ts.m.SendToClient(context.Background(), req(TypeConnect, nil, "f12").field("client_id").(string), wpData(t, 2)); err != nil {
		t.Fatal(err)
	}
	if w := recv(); w.Type != TypeData {
		t.Fatalf("SendToClient: got %s", w.raw)
	}
	for !seen[TypePing] { // server PINGs are checked as they arrive
		w := c.read()
		wpCheckEnvelope(t, w.raw)
		seen[w.Type] = true
	}
	ts.m.Conn(req(TypeConnect, nil, "f13").field("client_id").(string)).Close(CloseForbidden, "go away")
	code, _, frames := c.closed()
	for _, f := range frames {
		wpCheckEnvelope(t, f.raw)
		seen[f.Type] = true
	}
	if code != CloseForbidden {
		t.Fatalf("close code %d, want 4003", code)
	}
	for _, typ := range []string{
		TypeConnectAck, TypeAuthenticateFailure, TypeAuthenticateSuccess, TypePong, TypeSubscribeSuccess,
		TypeSubscribeFailure, TypeError, TypeActionResult, TypeUnsubscribeAck, TypeData, TypeEvent,
		TypeNotification, "CUSTOM_PUSH", TypePing, TypeDisconnect,
	} {
		if !seen[typ] {
			t.Errorf("no %s frame seen; the check did not cover it", typ)
		}
	}
}

// The reason of the close frame must fit a WebSocket control frame (123 bytes) and be valid
// UTF-8, or clients fail the connection (browsers report 1006 and naive clients reconnect):
// long or non-ASCII reasons, from the client's DISCONNECT or from Conn.Close, are cut to fit.
func TestProtocolCloseReasonFitsCloseFrame(t *testing.T) {
	long := "x" + strings.Repeat("é", 150) // 301 bytes; byte 100 is inside a rune
	cases := []struct {
		name     string
		close    func(ts *testServer, c *client)
		wantCode websocket.StatusCode
	}{
		{"client DISCONNECT", func(ts *testServer, c *client) {
			c.send(map[string]any{"type": TypeDisconnect, "payload": map[string]any{"code": 1000, "reason": long}})
		}, websocket.StatusNormalClosure},
		{"Conn.Close", func(ts *testServer, c *client) {
			wpConnID(ts.t, ts, c).Close(CloseForbidden, long)
		}, CloseForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial()
			wpAlive(t, c)
			tc.close(ts, c)
			code, reason, err := wpCloseStatus(c)
			if err != nil {
				t.Fatalf("no close frame (the client sees 1006): %v", err)
			}
			if code != tc.wantCode {
				t.Fatalf("close code %d, want %d", code, tc.wantCode)
			}
			if len(reason) > 123 || !utf8.ValidString(reason) || reason == "" {
				t.Fatalf("close reason %q (%d bytes): want 1-123 bytes of valid UTF-8", reason, len(reason))
			}
			if !strings.HasPrefix(long, strings.TrimSuffix(reason, "…")) {
				t.Fatalf("close reason %q is not a prefix of the reason given", reason)
			}
		})
	}
}
