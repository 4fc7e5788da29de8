package notifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/notifier"
	"github.com/switchboardrt/switchboard/auth"
)

// env is a manager with the default endpoint at /ws, the notifier endpoint at /notify
// and the REST queue at /api/messages, behind a real server on 127.0.0.1.
type env struct {
	t   *testing.T
	m   *switchboard.Manager
	agg *notifier.Aggregator
	srv *httptest.Server
}

func newEnv(t *testing.T, cfg switchboard.Config, opts notifier.Options) *env {
	t.Helper()
	if cfg.SendQueueSize == 0 {
		cfg.SendQueueSize = 4096
	}
	m := switchboard.New(cfg)
	agg := notifier.New(m, opts)
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	mux.Handle("/notify", agg.Handler())
	mux.Handle("/api/messages", agg.MessagesHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
		srv.Close()
	})
	return &env{t: t, m: m, agg: agg, srv: srv}
}

func (e *env) url(path string) string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path }

// client is a WebSocket client that reads continuously (so it answers pings) into frames.
type client struct {
	ws     *websocket.Conn
	frames chan []byte
	done   chan error // receives the read error that ended the connection
}

// dial opens a WebSocket to path, without reading from it.
func (e *env) dialRaw(path string, opts *websocket.DialOptions) *websocket.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.url(path), opts)
	if err != nil {
		e.t.Fatalf("dial %s: %v", path, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// dial opens a WebSocket to path and starts reading from it.
func (e *env) dial(path string, opts *websocket.DialOptions) *client {
	e.t.Helper()
	cl := &client{ws: e.dialRaw(path, opts), frames: make(chan []byte, 4096), done: make(chan error, 1)}
	go func() {
		for {
			typ, raw, err := cl.ws.Read(context.Background())
			if err != nil {
				cl.done <- err
				return
			}
			if typ != websocket.MessageText {
				raw = append([]byte("binary frame: "), raw...)
			}
			cl.frames <- raw
		}
	}()
	return cl
}

// subscribe opens a notifier connection and sends {}; it returns once the aggregator has
// the connection as a subscriber.
func (e *env) subscribe() *client {
	e.t.Helper()
	before := e.agg.Subscribers()
	c := e.dial("/notify", nil)
	write(e.t, c, `{}`)
	waitFor(e.t, "subscriber", func() bool { return e.agg.Subscribers() > before })
	return c
}

func write(t *testing.T, c *client, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// frame is a notifier frame, checked to hold exactly the keys type and data.
type frame struct {
	Type string
	Data json.RawMessage
	Raw  []byte
}

func parseFrame(t *testing.T, raw []byte) frame {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("frame %s: %v", raw, err)
	}
	if len(keys) != 2 || keys["type"] == nil || keys["data"] == nil {
		t.Fatalf("frame %s: want exactly the keys type and data", raw)
	}
	var typ string
	if err := json.Unmarshal(keys["type"], &typ); err != nil {
		t.Fatalf("frame %s: type: %v", raw, err)
	}
	return frame{Type: typ, Data: keys["data"], Raw: raw}
}

// readRaw returns the next frame c receives.
func readRaw(t *testing.T, c *client) []byte {
	t.Helper()
	select {
	case raw := <-c.frames:
		return raw
	case err := <-c.done:
		t.Fatalf("connection closed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a frame")
	}
	return nil
}

// read returns the next frame c receives, checked to be a notifier frame.
func read(t *testing.T, c *client) frame {
	t.Helper()
	return parseFrame(t, readRaw(t, c))
}

// expectNothing checks that nothing arrives on c within d and that it stays open.
func expectNothing(t *testing.T, c *client, d time.Duration) {
	t.Helper()
	select {
	case raw := <-c.frames:
		t.Fatalf("unexpected frame %s", raw)
	case err := <-c.done:
		t.Fatalf("connection closed: %v", err)
	case <-time.After(d):
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

// typical are the messages of a local app's backend, with the data they should arrive with.
var typical = []struct {
	typ  string
	data string
}{
	{"legacy", `{"verbosity":"warning","value":"Could not query the price of ETH"}`},
	{"legacy", `{"verbosity":"error","value":"Failed to connect to the node"}`},
	{"db_upgrade_status", `{"start_version":26,"target_version":35,"current_upgrade":{"to_version":30,"total_steps":8,"current_step":5}}`},
	{"data_migration_status", `{"start_version":1,"target_version":3,"current_migration":{"version":2,"total_steps":4,"current_step":1,"description":"Moving history events"}}`},
	{"data_migration_status", `{"start_version":1,"target_version":3,"current_migration":{"version":3,"total_steps":2,"current_step":0,"description":null}}`},
	{"refresh_balances", `{"type":"blockchain_balances","blockchain":"optimism"}`},
	{"missing_api_key", `{"service":"etherscan","location":"optimism"}`},
	{"missing_api_key", `{"service":"cryptocompare"}`},
	{"new_evm_token_detected", `{"token_identifier":"eip155:10/erc20:0x4200000000000000000000000000000000000042","seen_tx_hash":"0xabc"}`},
	{"new_evm_token_detected", `[{"token_identifier":"eip155:1/erc20:0x6B175474E89094C44Da98b954EedeAC495271d0F"},{"token_identifier":"eip155:10/erc20:0x4200000000000000000000000000000000000042","seen_description":"Airdrop <claim> & more"}]`},
	{"database_upload_result", `{"uploaded":false,"actionable":true,"message":"Upload failed: the remote database is newer"}`},
}

func TestFramesHaveExactlyTypeAndData(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{})
	c := e.subscribe()
	for _, tc := range typical {
		if err := e.agg.Send(tc.typ, json.RawMessage(tc.data)); err != nil {
			t.Fatalf("Send %s: %v", tc.typ, err)
		}
		f := read(t, c)
		if f.Type != tc.typ || !sameJSON(t, f.Data, []byte(tc.data)) {
			t.Errorf("got %s, want type %s data %s", f.Raw, tc.typ, tc.data)
		}
	}
	// Warning and Error make legacy messages; Go values and nil data work too.
	_ = e.agg.Warning("disk almost full")
	_ = e.agg.Error("node unreachable")
	_ = e.agg.Send("new_evm_token_detected", []map[string]string{{"token_identifier": "x"}})
	_ = e.agg.Send("refresh_balances", nil)
	want := []string{
		`{"type":"legacy","data":{"verbosity":"warning","value":"disk almost full"}}`,
		`{"type":"legacy","data":{"verbosity":"error","value":"node unreachable"}}`,
		`{"type":"new_evm_token_detected","data":[{"token_identifier":"x"}]}`,
		`{"type":"refresh_balances","data":{}}`,
	}
	for _, w := range want {
		if f := read(t, c); string(f.Raw) != w {
			t.Errorf("got %s, want %s", f.Raw, w)
		}
	}
}

func TestSendValidates(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{})
	for _, typ := range []string{"", "Legacy", "db-upgrade", "a b", "LEGACY", "é"} {
		if err := e.agg.Send(typ, nil); !errors.Is(err, notifier.ErrBadType) {
			t.Errorf("Send(%q): %v, want ErrBadType", typ, err)
		}
	}
	if err := e.agg.Send("bad_data", make(chan int)); err == nil {
		t.Error("Send with a channel: no error")
	}
	if err := e.agg.Send("bad_raw", json.RawMessage(`{"a":`)); err == nil {
		t.Error("Send with broken raw JSON: no error")
	}
	if n := e.agg.Pending(); n != 0 {
		t.Errorf("Pending = %d after refused sends", n)
	}
}

func TestBacklogDeliveredInOrder(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{})
	for _, tc := range typical {
		if err := e.agg.Send(tc.typ, json.RawMessage(tc.data)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.agg.Pending(); n != len(typical) {
		t.Fatalf("Pending = %d, want %d", n, len(typical))
	}
	c := e.dial("/notify", nil)
	expectNothing(t, c, 100*time.Millisecond) // nothing before the front end speaks
	write(t, c, `{}`)
	for _, tc := range typical {
		f := read(t, c)
		if f.Type != tc.typ || !sameJSON(t, f.Data, []byte(tc.data)) {
			t.Fatalf("got %s, want type %s data %s", f.Raw, tc.typ, tc.data)
		}
	}
	// Later messages from the front end are ignored: no second copy of the backlog.
	write(t, c, `{"hello":"again"}`)
	write(t, c, `not even JSON`)
	_ = e.agg.Send("refresh_balances", map[string]string{"type": "blockchain_balances", "blockchain": "optimism"})
	if f := read(t, c); f.Type != "refresh_balances" {
		t.Fatalf("got %s after the backlog", f.Raw)
	}
	if n := e.agg.Pending(); n != 0 {
		t.Errorf("Pending = %d with a subscriber", n)
	}
}

func TestBacklogAfterReconnect(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{})
	c := e.subscribe()
	_ = e.agg.Warning("one")
	if f := read(t, c); !strings.Contains(string(f.Data), "one") {
		t.Fatalf("got %s", f.Raw)
	}
	_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, "unsubscribe", func() bool { return e.agg.Subscribers() == 0 })
	_ = e.agg.Warning("two")
	_ = e.agg.Warning("three")
	if n := e.agg.Pending(); n != 2 {
		t.Fatalf("Pending = %d, want 2", n)
	}
	c2 := e.dial("/notify", nil)
	write(t, c2, `{}`)
	for _, w := range []string{"two", "three"} {
		if f := read(t, c2); !strings.Contains(string(f.Data), `"`+w+`"`) {
			t.Fatalf("got %s, want %s", f.Raw, w)
		}
	}
}

// TestBacklogRace sends from several goroutines while a front end subscribes, and checks
// that every notification arrives once, each sender's in its order.
func TestBacklogRace(t *testing.T) {
	const senders, perSender = 4, 150
	for round := 0; round < 10; round++ {
		e := newEnv(t, switchboard.Config{}, notifier.Options{QueueSize: 20 + senders*perSender})
		for i := 0; i < 20; i++ { // a backlog that exists before anyone connects
			_ = e.agg.Send("db_upgrade_status", map[string]int{"sender": -1, "seq": i})
		}
		c := e.dial("/notify", nil)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < perSender; i++ {
					if err := e.agg.Send("db_upgrade_status", map[string]int{"sender": s, "seq": i}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		close(start)
		write(t, c, `{}`)
		next := map[int]int{-1: 0}
		for n := 0; n < 20+senders*perSender; n++ {
			f := read(t, c)
			var d struct{ Sender, Seq int }
			if err := json.Unmarshal(f.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Seq != next[d.Sender] {
				t.Fatalf("round %d: sender %d: got seq %d, want %d", round, d.Sender, d.Seq, next[d.Sender])
			}
			next[d.Sender]++
		}
		wg.Wait()
		expectNothing(t, c, 50*time.Millisecond)
		if e.agg.Dropped() != 0 || e.agg.Pending() != 0 {
			t.Fatalf("dropped %d, pending %d", e.agg.Dropped(), e.agg.Pending())
		}
	}
}

func TestQueueBoundDropsOldest(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{QueueSize: 3})
	for i := 1; i <= 5; i++ {
		_ = e.agg.Send("db_upgrade_status", map[string]int{"current_step": i})
	}
	if d, p := e.agg.Dropped(), e.agg.Pending(); d != 2 || p != 3 {
		t.Fatalf("Dropped = %d, Pending = %d; want 2, 3", d, p)
	}
	c := e.dial("/notify", nil)
	write(t, c, `{}`)
	for i := 3; i <= 5; i++ {
		if f := read(t, c); string(f.Data) != fmt.Sprintf(`{"current_step":%d}`, i) {
			t.Fatalf("got %s, want step %d", f.Raw, i)
		}
	}
}

func TestQueueSizeCappedBySendQueue(t *testing.T) {
	m := switchboard.New(switchboard.Config{SendQueueSize: 100})
	defer m.Shutdown(context.Background())
	if n := notifier.New(m, notifier.Options{}).QueueSize(); n != 50 {
		t.Errorf("QueueSize = %d, want 50 (half of SendQueueSize)", n)
	}
	m2 := switchboard.New(switchboard.Config{SendQueueSize: 2000})
	defer m2.Shutdown(context.Background())
	if n := notifier.New(m2, notifier.Options{}).QueueSize(); n != notifier.DefaultQueueSize {
		t.Errorf("QueueSize = %d, want %d", n, notifier.DefaultQueueSize)
	}
}

func TestMessagesHandlerDrains(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{})
	for _, tc := range typical {
		_ = e.agg.Send(tc.typ, json.RawMessage(tc.data))
	}
	get := func() []json.RawMessage {
		resp, err := http.Get(e.srv.URL + "/api/messages")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var list []json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		return list
	}
	list := get()
	if len(list) != len(typical) {
		t.Fatalf("got %d messages, want %d", len(list), len(typical))
	}
	for i, raw := range list {
		f := parseFrame(t, raw)
		if f.Type != typical[i].typ || !sameJSON(t, f.Data, []byte(typical[i].data)) {
			t.Errorf("message %d: got %s", i, raw)
		}
	}
	if list := get(); len(list) != 0 {
		t.Errorf("second GET: %d messages, want none", len(list))
	}
	resp, err := http.Post(e.srv.URL+"/api/messages", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST: status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// countingCodec counts the frames it encodes, by message type.
type countingCodec struct {
	switchboard.Codec
	mu sync.Mutex
	n  map[string]int
}

func (c *countingCodec) Encode(dst []byte, m *switchboard.Message) ([]byte, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[m.Type]++
	c.mu.Unlock()
	return c.Codec.Encode(dst, m)
}

func (c *countingCodec) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[typ]
}

func TestBroadcastReachesBothFormats(t *testing.T) {
	jsonCodec := &countingCodec{Codec: switchboard.JSONCodec{}}
	notifierCodec := &countingCodec{Codec: notifier.Codec{}}
	m := switchboard.New(switchboard.Config{Codec: jsonCodec, SendQueueSize: 1024})
	agg := notifier.New(m, notifier.Options{})
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	mux.Handle("/notify", m.Endpoint(switchboard.EndpointConfig{Codec: notifierCodec, Protocol: agg.Protocol()}))
	srv := httptest.NewServer(mux)
	e := &env{t: t, m: m, agg: agg, srv: srv}
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		srv.Close()
	})

	n1, n2 := e.subscribe(), e.subscribe()
	d1, d2 := e.dial("/ws", nil), e.dial("/ws", nil)
	waitFor(t, "connections", func() bool { return m.Stats().Connections == 4 })

	msg, err := switchboard.NewEvent("build_finished", map[string]any{"target": "release", "ok": true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Broadcast(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{n1, n2} {
		f := read(t, c)
		if string(f.Raw) != `{"type":"event","data":{"event":"build_finished","data":{"ok":true,"target":"release"}}}` {
			t.Errorf("notifier client got %s", f.Raw)
		}
	}
	for _, c := range []*client{d1, d2} {
		raw := readRaw(t, c)
		var env struct {
			Type    string
			Payload struct{ Event string }
			ID      string
		}
		if err := json.Unmarshal(raw, &env); err != nil || env.Type != "EVENT" || env.Payload.Event != "build_finished" || env.ID == "" {
			t.Errorf("default client got %s", raw)
		}
	}
	if a, b := jsonCodec.count("EVENT"), notifierCodec.count("EVENT"); a != 1 || b != 1 {
		t.Errorf("EVENT encoded %d times as JSON and %d times as notifier, want once each", a, b)
	}

	// A notification of the aggregator reaches default clients subscribed to its topic.
	write(t, d1, `{"type":"SUBSCRIBE","id":"s1","payload":{"subscriptions":["notifier"]}}`)
	if raw := readRaw(t, d1); !bytes.Contains(raw, []byte("SUBSCRIBE_SUCCESS")) {
		t.Fatalf("SUBSCRIBE: %s", raw)
	}
	_ = agg.Warning("low disk")
	if f := read(t, n1); f.Type != "legacy" {
		t.Errorf("notifier client got %s", f.Raw)
	}
	if raw := readRaw(t, d1); !bytes.Contains(raw, []byte(`"type":"legacy"`)) || !bytes.Contains(raw, []byte(`"topic":"notifier"`)) {
		t.Errorf("default subscriber got %s", raw)
	}
}

func TestOriginCheck(t *testing.T) {
	e := newEnv(t, switchboard.Config{OriginPatterns: []string{"localhost:*"}}, notifier.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{"Origin": {"http://evil.example"}}
	c, resp, err := websocket.Dial(ctx, e.url("/notify"), &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		_ = c.CloseNow()
		t.Fatal("foreign origin accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, response %v", err, resp)
	}
	cl := e.dial("/notify", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
	write(t, cl, `{}`)
	_ = e.agg.Warning("hello")
	if f := read(t, cl); f.Type != "legacy" {
		t.Errorf("got %s", f.Raw)
	}
}

// TestKeepalive checks that notifier connections are kept alive with WebSocket pings
// (the codec has no PING message): a client that keeps reading stays open, and receives
// no frame but notifications.
func TestKeepalive(t *testing.T) {
	e := newEnv(t, switchboard.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond}, notifier.Options{})
	c := e.subscribe() // reads continuously: coder/websocket answers pings while reading
	expectNothing(t, c, 1200*time.Millisecond)
	_ = e.agg.Warning("still here")
	read(t, c)
	if s := e.m.Stats(); s.Connections != 1 {
		t.Errorf("connections = %d", s.Connections)
	}
}

// TestSilentClientTimesOut checks the other side of keepalive: a client that does not
// answer pings (it never reads) is closed by the pong timeout.
func TestSilentClientTimesOut(t *testing.T) {
	e := newEnv(t, switchboard.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}, notifier.Options{})
	ws := e.dialRaw("/notify", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscriber", func() bool { return e.agg.Subscribers() == 1 })
	time.Sleep(500 * time.Millisecond) // not reading: pings go unanswered
	_, raw, err := ws.Read(ctx)
	if err == nil {
		t.Fatalf("got frame %s, want the close", raw)
	}
	if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
		t.Errorf("close status %v (%v), want 1008", code, err)
	}
	waitFor(t, "unsubscribe", func() bool { return e.agg.Subscribers() == 0 })
	_ = e.agg.Warning("queued again")
	if n := e.agg.Pending(); n != 1 {
		t.Errorf("Pending = %d after the front end left", n)
	}
}

func TestRequireAuthHandshakeToken(t *testing.T) {
	authn := switchboardAuth(func(tok string) bool { return tok == "good" })
	e := newEnv(t, switchboard.Config{RequireAuth: true, Authenticator: authn}, notifier.Options{})
	_ = e.agg.Warning("backlog")

	anon := e.dial("/notify", nil)
	write(t, anon, `{}`)
	expectNothing(t, anon, 150*time.Millisecond)
	if e.agg.Subscribers() != 0 || e.agg.Pending() != 1 {
		t.Fatalf("unauthenticated connection subscribed")
	}

	c := e.dial("/notify?token=good", nil)
	write(t, c, `{}`)
	if f := read(t, c); f.Type != "legacy" {
		t.Errorf("got %s", f.Raw)
	}
}

func TestClosedByShutdown(t *testing.T) {
	e := newEnv(t, switchboard.Config{}, notifier.Options{})
	c := e.subscribe()
	go func() { _ = e.m.Shutdown(context.Background()) }()
	var err error
	select {
	case raw := <-c.frames:
		t.Fatalf("got frame %s, want the close (no DISCONNECT message in this format)", raw)
	case err = <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("not closed")
	}
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Errorf("close status %v, want 1001", code)
	}
	if !errors.Is(e.agg.Send("late", nil), switchboard.ErrShutdown) && e.agg.Pending() == 0 {
		t.Error("Send after shutdown neither queued nor failed")
	}
}

// switchboardAuth accepts the tokens ok approves, as user "u1".
func switchboardAuth(ok func(string) bool) auth.Authenticator {
	return auth.AuthenticatorFunc(func(_ context.Context, tok string) (*auth.Identity, error) {
		if !ok(tok) {
			return nil, auth.ErrTokenInvalid
		}
		return &auth.Identity{UserID: "u1"}, nil
	})
}
