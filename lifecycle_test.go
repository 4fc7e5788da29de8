package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// lcEnd is what a client saw until its connection ended.
type lcEnd struct {
	frames []wire
	code   websocket.StatusCode // -1 when the connection ended without a close frame
	reason string
	err    error
}

// lcReadToEnd reads c until the connection ends, without touching the testing.T.
func lcReadToEnd(c *client, timeout time.Duration) lcEnd {
	var out lcEnd
	deadline := time.Now().Add(timeout)
	for {
		w, err := c.tryRead(time.Until(deadline))
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				out.code, out.reason = ce.Code, ce.Reason
			} else {
				out.code, out.err = -1, err
			}
			return out
		}
		out.frames = append(out.frames, w)
	}
}

// lcCheckDisconnect checks that the last frame before the close is DISCONNECT {code, reason}
// and that the close frame carries the same code.
func lcCheckDisconnect(t testing.TB, who string, end lcEnd, code int) {
	t.Helper()
	if end.code != websocket.StatusCode(code) {
		t.Fatalf("%s: connection ended with %d %q (%v), want close %d", who, end.code, end.reason, end.err, code)
	}
	if len(end.frames) == 0 {
		t.Fatalf("%s: close %d without a DISCONNECT first", who, code)
	}
	last := end.frames[len(end.frames)-1]
	var p struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	if last.Type != TypeDisconnect || json.Unmarshal(last.Payload, &p) != nil || p.Code != code || p.Reason == "" || p.Reason != end.reason {
		t.Fatalf("%s: last frame before close %d %q is %s, want DISCONNECT {code: %d, reason: %q}", who, code, end.reason, last.raw, code, end.reason)
	}
}

// lcHooks records OnConnect and OnDisconnect calls.
type lcHooks struct {
	mu         sync.Mutex
	connects   map[string]int
	disconnect map[string][]int
}

func (h *lcHooks) config(cfg Config) Config {
	h.connects, h.disconnect = map[string]int{}, map[string][]int{}
	cfg.OnConnect = func(c *Conn) {
		h.mu.Lock()
		h.connects[c.ID()]++
		h.mu.Unlock()
	}
	cfg.OnDisconnect = func(c *Conn, code int, _ string) {
		h.mu.Lock()
		h.disconnect[c.ID()] = append(h.disconnect[c.ID()], code)
		h.mu.Unlock()
	}
	return cfg
}

func (h *lcHooks) disconnected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.disconnect)
}

// check verifies one OnConnect and one OnDisconnect with the wanted code per client ID.
func (h *lcHooks) check(t testing.TB, want map[string]int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.connects) != len(want) || len(h.disconnect) != len(want) {
		t.Errorf("hooks saw %d connections and %d disconnections, want %d each", len(h.connects), len(h.disconnect), len(want))
	}
	for id, code := range want {
		if n := h.connects[id]; n != 1 {
			t.Errorf("%s: OnConnect called %d times", id, n)
		}
		if got := h.disconnect[id]; len(got) != 1 || got[0] != code {
			t.Errorf("%s: OnDisconnect codes %v, want [%d]", id, got, code)
		}
	}
}

func TestShutdownDisconnectsEveryClient(t *testing.T) {
	var hooks lcHooks
	ts := startServer(t, hooks.config(Config{}))
	const n = 5
	ids := map[string]int{}
	ends := make(chan lcEnd, n)
	for i := 0; i < n; i++ {
		c := ts.dial()
		ids[bcConnect(t, c)] = CloseGoingAway
		if i%2 == 0 {
			if r := c.subscribe("news"); r.Type != TypeSubscribeSuccess {
				t.Fatalf("%s", r.raw)
			}
		}
		go func() { ends <- lcReadToEnd(c, 20*time.Second) }()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := ts.m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	for i := 0; i < n; i++ {
		lcCheckDisconnect(t, fmt.Sprintf("client %d", i), <-ends, CloseGoingAway)
	}
	// Shutdown waits for the connections: by the time it returns they are all gone.
	st := ts.m.Stats()
	if st.Connections != 0 || st.Topics != 0 || st.Subscriptions != 0 || st.Disconnects != n {
		t.Fatalf("after Shutdown: %+v", st)
	}
	hooks.check(t, ids)

	// New upgrades are refused.
	_, resp, err := ts.tryDial()
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v %+v, want HTTP 503", err, resp)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" {
		t.Fatalf("503 body: %+v %v", body, err)
	}
}

// TestShutdownLeavesNoGoroutines runs 200 connections on a server of its own and checks the
// goroutine count explicitly once everything is shut down.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	const n = 200
	base := runtime.NumGoroutine()
	// The clients never answer PINGs: no pong deadline, or a slow run (200 dials under -race
	// on a loaded machine) would see them closed with 1008 instead of 1001.
	m := New(Config{ConnRatePerIP: -1, PingInterval: 50 * time.Millisecond, PongTimeout: -1})
	srv := httptest.NewServer(m)
	ts := &testServer{t: t, m: m, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}

	ends := make(chan lcEnd, n)
	for i := 0; i < n; i++ {
		c := ts.dial()
		if i%4 == 0 {
			if r := c.subscribe(fmt.Sprintf("t%d", i%10)); r.Type != TypeSubscribeSuccess {
				t.Fatalf("%s", r.raw)
			}
		} else {
			bcConnect(t, c)
		}
		go func() { ends <- lcReadToEnd(c, 30*time.Second) }()
	}
	if st := m.Stats(); st.Connections != n {
		t.Fatalf("%d connections, want %d", st.Connections, n)
	}
	time.Sleep(120 * time.Millisecond) // let the sweeper send a round of PINGs

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i := 0; i < n; i++ {
		if end := <-ends; end.code != websocket.StatusGoingAway {
			t.Fatalf("client ended with %d %q %v, want 1001", end.code, end.reason, end.err)
		}
	}
	srv.Close()
	if st := m.Stats(); st.Connections != 0 || st.Disconnects != n || st.Topics != 0 {
		t.Fatalf("after Shutdown: %+v", st)
	}
	checkGoroutines(t, base)
}

// TestShutdownExpiredContext: with a context already done, Shutdown still closes every
// connection and stops every goroutine, and reports the context's error. The clients never
// read, so no close handshake can complete.
func TestShutdownExpiredContext(t *testing.T) {
	var hooks lcHooks
	ts := startServer(t, hooks.config(Config{}))
	var clients []*client
	for i := 0; i < 4; i++ {
		c := ts.dial()
		bcConnect(t, c)
		clients = append(clients, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.m.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown(cancelled ctx) = %v, want context.Canceled", err)
	}
	if st := ts.m.Stats(); st.Connections != 0 || st.Disconnects != 4 {
		t.Fatalf("after Shutdown: %+v", st)
	}
	if n := hooks.disconnected(); n != 4 {
		t.Fatalf("OnDisconnect called for %d connections, want 4", n)
	}
	for i, c := range clients {
		if end := lcReadToEnd(c, 10*time.Second); errors.Is(end.err, context.DeadlineExceeded) {
			t.Fatalf("client %d: connection still open after Shutdown", i)
		}
	}
	// startServer's cleanup checks that no goroutine is left.
}

// TestHooksAndCloseCodes: OnConnect and OnDisconnect run once per connection, with the code
// the connection ended with.
func TestHooksAndCloseCodes(t *testing.T) {
	var hooks lcHooks
	ts := startServer(t, hooks.config(Config{}))
	normal, dropped, kicked := ts.dial(), ts.dial(), ts.dial()
	want := map[string]int{
		bcConnect(t, normal):  CloseNormal,
		bcConnect(t, dropped): CloseAbnormal,
	}
	kickedID := bcConnect(t, kicked)
	want[kickedID] = CloseForbidden
	if st := ts.m.Stats(); st.Connections != 3 || st.Accepted != 3 {
		t.Fatalf("Stats: %+v", st)
	}

	// The client leaves with 1000.
	if err := normal.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	// The client's TCP connection drops without a close frame.
	_ = dropped.ws.CloseNow()
	// The server closes one with 4003: DISCONNECT, then the close frame.
	conn := ts.m.Conn(kickedID)
	if conn == nil {
		t.Fatal("Conn(id) = nil")
	}
	conn.Close(CloseForbidden, "not allowed here")
	lcCheckDisconnect(t, "kicked client", lcReadToEnd(kicked, 10*time.Second), CloseForbidden)

	waitFor(t, "three disconnections", func() bool { return hooks.disconnected() == 3 })
	hooks.check(t, want)
	if s := conn.State(); s != StateDisconnected {
		t.Errorf("closed connection in state %s", s)
	}
	conn.Close(CloseForbidden, "again") // closing a closed connection does nothing
	if err := conn.Send(NewPing()); !errors.Is(err, ErrClosed) {
		t.Errorf("Send on a closed connection = %v, want ErrClosed", err)
	}
	st := ts.m.Stats()
	if st.Connections != 0 || st.Accepted != 3 || st.Disconnects != 3 {
		t.Fatalf("Stats after all closed: %+v", st)
	}
	if ts.m.Conn(kickedID) != nil {
		t.Fatal("a closed connection is still registered")
	}
	time.Sleep(50 * time.Millisecond) // no late second call
	hooks.check(t, want)
}

// lcBroker is MemoryBroker with a record of topic interest changes.
type lcBroker struct {
	*MemoryBroker
	mu     sync.Mutex
	events []string
}

func (b *lcBroker) SubscribeTopic(ctx context.Context, topic string) error {
	b.mu.Lock()
	b.events = append(b.events, "+"+topic)
	b.mu.Unlock()
	return b.MemoryBroker.SubscribeTopic(ctx, topic)
}

func (b *lcBroker) UnsubscribeTopic(ctx context.Context, topic string) error {
	b.mu.Lock()
	b.events = append(b.events, "-"+topic)
	b.mu.Unlock()
	return b.MemoryBroker.UnsubscribeTopic(ctx, topic)
}

func (b *lcBroker) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.events, " ")
}

// TestLeavingUnsubscribes: a connection that ends leaves its topics, and the broker hears
// when a topic's last local subscriber is gone.
func TestLeavingUnsubscribes(t *testing.T) {
	broker := &lcBroker{MemoryBroker: NewMemoryBroker()}
	ts := startServer(t, Config{Broker: broker})
	a, b := ts.dial(), ts.dial()
	if r := a.subscribe("room", "lobby"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	if r := b.subscribe("room"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	if got := broker.log(); got != "+room +lobby" {
		t.Fatalf("broker calls %q, want %q", got, "+room +lobby")
	}
	if st := ts.m.Stats(); st.Topics != 2 || st.Subscriptions != 3 {
		t.Fatalf("Stats: %+v", st)
	}

	_ = a.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "a's subscriptions to go", func() bool { return ts.m.Stats().Subscriptions == 1 })
	if st := ts.m.Stats(); st.Topics != 1 {
		t.Fatalf("Stats after a left: %+v", st)
	}
	if got := broker.log(); got != "+room +lobby -lobby" {
		t.Fatalf("broker calls %q, want %q", got, "+room +lobby -lobby")
	}

	_ = b.ws.CloseNow()
	waitFor(t, "b's subscriptions to go", func() bool { return ts.m.Stats().Subscriptions == 0 })
	if st := ts.m.Stats(); st.Topics != 0 || st.Connections != 0 {
		t.Fatalf("Stats after everyone left: %+v", st)
	}
	if got := broker.log(); got != "+room +lobby -lobby -room" {
		t.Fatalf("broker calls %q, want %q", got, "+room +lobby -lobby -room")
	}
	// Publishing to a topic nobody is subscribed to any more reaches nobody, without error.
	if err := ts.m.Publish(context.Background(), "room", bcData(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
}

// TestManyConnectionsOneUser: 500 connections of one user on one topic; one Publish reaches
// every one of them. (10,000 connections are left to the benchmarks: too heavy for -race on
// a small CI machine.)
func TestManyConnectionsOneUser(t *testing.T) {
	const n = 500
	ts := startServer(t, Config{Authenticator: newJWT(t), MaxConnsPerUser: -1, ConnRatePerIP: -1})
	tok := token(t, "alice", time.Hour)

	clients := make([]*client, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, _, err := ts.tryDial(dialOpts{query: "token=" + tok})
				if err == nil {
					err = lcRequest(c, `{"type":"SUBSCRIBE","id":"s","payload":{"subscriptions":["all-tabs"]}}`, TypeSubscribeSuccess)
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					continue
				}
				clients[i] = c
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(ts.m.UserConns("alice")); got != n {
		t.Fatalf("UserConns = %d, want %d", got, n)
	}
	if st := ts.m.Stats(); st.Connections != n || st.Subscriptions != n || st.Topics != 1 {
		t.Fatalf("Stats: %+v", st)
	}

	msg := bcData(t, "fanout", map[string]any{"n": 1})
	if err := ts.m.Publish(context.Background(), "all-tabs", msg); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, n)
	for _, c := range clients {
		go func() {
			frames, err := bcReadN(c, 1, 30*time.Second)
			if err == nil && (frames[0].ID != msg.ID || frames[0].Topic != "all-tabs") {
				err = fmt.Errorf("got %s", frames[0].raw)
			}
			got <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	if st := ts.m.Stats(); st.MessagesOut < n {
		t.Fatalf("MessagesOut = %d, want at least %d", st.MessagesOut, n)
	}
}

// lcRequest sends a raw frame and reads replies until one of type want (for goroutines).
func lcRequest(c *client, frame, want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		return err
	}
	for {
		w, err := c.tryRead(20 * time.Second)
		if err != nil {
			return err
		}
		if w.Type == want {
			return nil
		}
		if w.Type != TypePing {
			return fmt.Errorf("got %s, want %s", w.raw, want)
		}
	}
}
