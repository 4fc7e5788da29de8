package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingCodec is JSONCodec with a count of Encode calls. It is used through a pointer, so
// two countingCodecs are two distinct codecs to the manager's encode-once cache.
type countingCodec struct {
	JSONCodec
	encodes atomic.Int64
}

func (c *countingCodec) Encode(dst []byte, m *Message) ([]byte, error) {
	c.encodes.Add(1)
	return c.JSONCodec.Encode(dst, m)
}

// bcStartEndpoints is startServer with extra endpoints of the same manager: paths maps a
// path ("/ws2") to the endpoint's config. It returns the server (dialing /ws) and one
// testServer per extra path, sharing the manager and the HTTP server.
func bcStartEndpoints(t testing.TB, cfg Config, paths map[string]EndpointConfig) (*testServer, map[string]*testServer) {
	t.Helper()
	base := runtime.NumGoroutine()
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = -1
	}
	m := New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	for p, ec := range paths {
		mux.Handle(p, m.Endpoint(ec))
	}
	srv := httptest.NewServer(mux)
	root := "ws" + strings.TrimPrefix(srv.URL, "http")
	ts := &testServer{t: t, m: m, srv: srv, url: root + "/ws"}
	others := make(map[string]*testServer, len(paths))
	for p := range paths {
		others[p] = &testServer{t: t, m: m, srv: srv, url: root + p}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil && !errors.Is(err, ErrShutdown) {
			t.Errorf("Shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
		checkGoroutines(t, base)
	})
	return ts, others
}

// bcConnect sends CONNECT and returns the client ID from CONNECT_ACK. Once it returns, the
// connection is registered with the manager (and authenticated, for a handshake token).
func bcConnect(t testing.TB, c *client) string {
	t.Helper()
	ack := c.request(TypeConnect, nil, "connect-1")
	id, _ := ack.field("client_id").(string)
	if ack.Type != TypeConnectAck || id == "" {
		t.Fatalf("CONNECT answered with %s", ack.raw)
	}
	return id
}

// bcDialUser dials with a handshake token for user and waits until the connection is
// authenticated.
func bcDialUser(t testing.TB, ts *testServer, user string) *client {
	t.Helper()
	c := ts.dial(dialOpts{query: "token=" + token(t, user, time.Hour)})
	ack := c.request(TypeConnect, nil, "connect-1")
	if ack.field("authenticated") != true || ack.field("user_id") != user {
		t.Fatalf("handshake token for %s: CONNECT_ACK %s", user, ack.raw)
	}
	return c
}

// bcQuiet checks that nothing was queued for c before this call: it sends a PING and the next
// frame (server PINGs aside) must be the PONG that answers it. Deliveries are queued before
// Publish returns and a connection's frames are written in order, so anything published to
// c earlier would arrive first.
func bcQuiet(t testing.TB, c *client, id string) {
	t.Helper()
	c.send(map[string]any{"type": TypePing, "id": id})
	for {
		w := c.read()
		if w.Type == TypePing {
			continue
		}
		if w.Type != TypePong || w.CorrelationID != id {
			t.Fatalf("expected nothing before the PONG to %s, got %s", id, w.raw)
		}
		return
	}
}

// bcReadN reads n frames other than server PINGs, without touching the testing.T (for use in
// goroutines).
func bcReadN(c *client, n int, timeout time.Duration) ([]wire, error) {
	deadline := time.Now().Add(timeout)
	out := make([]wire, 0, n)
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			return out, fmt.Errorf("timed out after %d of %d frames", len(out), n)
		}
		w, err := c.tryRead(left)
		if err != nil {
			return out, fmt.Errorf("after %d of %d frames: %w", len(out), n, err)
		}
		if w.Type == TypePing {
			continue
		}
		out = append(out, w)
	}
	return out, nil
}

// bcSeq returns payload.data.<key> of a DATA frame as an int (-1 if absent).
func bcSeq(w wire, key string) int {
	var p struct {
		Data map[string]json.Number `json:"data"`
	}
	d := json.NewDecoder(strings.NewReader(string(w.Payload)))
	d.UseNumber()
	if d.Decode(&p) != nil {
		return -1
	}
	n, err := p.Data[key].Int64()
	if err != nil {
		return -1
	}
	return int(n)
}

func bcData(t testing.TB, resource string, data any) *Message {
	t.Helper()
	msg, err := NewData(resource, data)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestBroadcastReachesEveryConnection(t *testing.T) {
	ts := startServer(t, Config{})
	var clients []*client
	for i := 0; i < 6; i++ {
		c := ts.dial()
		bcConnect(t, c)
		clients = append(clients, c)
	}
	msg := bcData(t, "announcement", map[string]any{"text": "hello all"})
	if err := ts.m.Broadcast(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		w := c.expect(TypeData)
		if w.ID != msg.ID || w.Topic != "" || !strings.Contains(string(w.Payload), `"hello all"`) {
			t.Fatalf("client %d got %s", i, w.raw)
		}
		bcQuiet(t, c, "after") // exactly one copy
	}
}

func TestBroadcastRequireAuthSkipsUnauthenticated(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true})
	authed := bcDialUser(t, ts, "alice")
	viaMessage := ts.dial()
	if r := viaMessage.authenticate(token(t, "bob", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("AUTHENTICATE: %s", r.raw)
	}
	anon := ts.dial()
	bcConnect(t, anon)

	msg := bcData(t, "announcement", map[string]any{"n": 1})
	if err := ts.m.Broadcast(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{authed, viaMessage} {
		if w := c.expect(TypeData); w.ID != msg.ID {
			t.Fatalf("got %s", w.raw)
		}
	}
	bcQuiet(t, anon, "anon") // the unauthenticated connection got nothing
}

func TestBroadcastToUsersReachesEveryTab(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	var alice []*client
	for i := 0; i < 3; i++ {
		alice = append(alice, bcDialUser(t, ts, "alice"))
	}
	bob := bcDialUser(t, ts, "bob")
	carol := bcDialUser(t, ts, "carol")
	anon := ts.dial()
	bcConnect(t, anon)
	if n := len(ts.m.UserConns("alice")); n != 3 {
		t.Fatalf("UserConns(alice) = %d, want 3", n)
	}

	msg, err := NewNotification(Notification{Title: "Order shipped", Message: "#1042"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.m.BroadcastToUsers(context.Background(), msg, "alice", "bob", "nobody"); err != nil {
		t.Fatal(err)
	}
	for i, c := range append(alice, bob) {
		w := c.expect(TypeNotification)
		if w.ID != msg.ID || w.field("title") != "Order shipped" {
			t.Fatalf("recipient %d got %s", i, w.raw)
		}
		bcQuiet(t, c, "after") // one copy per connection, even with several tabs
	}
	bcQuiet(t, carol, "carol")
	bcQuiet(t, anon, "anon")

	if err := ts.m.BroadcastToUsers(context.Background(), msg); err != nil {
		t.Fatalf("BroadcastToUsers with no users: %v", err)
	}
}

func TestPublishReachesOnlySubscribers(t *testing.T) {
	ts := startServer(t, Config{})
	sub1, sub2, other, none := ts.dial(), ts.dial(), ts.dial(), ts.dial()
	for _, c := range []*client{sub1, sub2} {
		if r := c.subscribe("news"); r.Type != TypeSubscribeSuccess {
			t.Fatalf("%s", r.raw)
		}
	}
	if r := other.subscribe("sports"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	bcConnect(t, none)

	// A message with no id, no timestamp and a stale topic: the manager fills them in on a
	// copy and leaves the caller's message alone.
	msg := &Message{Type: TypeEvent, Payload: json.RawMessage(`{"event":"breaking","data":{"n":7}}`), Topic: "stale"}
	before := *msg
	beforePayload := append(json.RawMessage(nil), msg.Payload...)
	if err := ts.m.Publish(context.Background(), "news", msg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*msg, before) || string(msg.Payload) != string(beforePayload) {
		t.Fatalf("Publish modified the caller's message: %+v, was %+v", *msg, before)
	}
	var ids []string
	for _, c := range []*client{sub1, sub2} {
		w := c.expect(TypeEvent)
		if w.Topic != "news" || w.ID == "" || w.Timestamp == 0 || w.field("event") != "breaking" {
			t.Fatalf("subscriber got %s", w.raw)
		}
		ids = append(ids, w.ID)
	}
	if ids[0] != ids[1] {
		t.Fatalf("subscribers got different ids %q and %q for one publication", ids[0], ids[1])
	}
	bcQuiet(t, other, "other")
	bcQuiet(t, none, "none")

	// A complete message (id and timestamp set) is not modified either.
	full := bcData(t, "article", map[string]any{"id": 1})
	before = *full
	if err := ts.m.Publish(context.Background(), "sports", full); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*full, before) {
		t.Fatalf("Publish modified the caller's message: %+v, was %+v", *full, before)
	}
	if w := other.expect(TypeData); w.Topic != "sports" || w.ID != full.ID || w.Timestamp != full.Timestamp {
		t.Fatalf("got %s, want id %s timestamp %v", w.raw, full.ID, full.Timestamp)
	}
	bcQuiet(t, sub1, "sub1")

	// Publishing to a topic without subscribers is not an error.
	if err := ts.m.Publish(context.Background(), "empty", full); err != nil {
		t.Fatalf("Publish to a topic without subscribers: %v", err)
	}
}

func TestSendToClient(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := ts.dial(), ts.dial()
	idA := bcConnect(t, a)
	bcConnect(t, b)

	msg := bcData(t, "direct", map[string]any{"to": "a"})
	if err := ts.m.SendToClient(context.Background(), idA, msg); err != nil {
		t.Fatal(err)
	}
	if w := a.expect(TypeData); w.ID != msg.ID || w.Topic != "" {
		t.Fatalf("got %s", w.raw)
	}
	bcQuiet(t, a, "a")
	bcQuiet(t, b, "b")

	err := ts.m.SendToClient(context.Background(), "no-such-client", msg)
	if !errors.Is(err, ErrClientNotFound) {
		t.Fatalf("SendToClient(unknown) = %v, want ErrClientNotFound", err)
	}
}

func TestPublishInvalidTopic(t *testing.T) {
	ts := startServer(t, Config{MaxTopicLength: 20})
	msg := bcData(t, "x", nil)
	for _, topic := range []string{"", "has space", "naïve", "semi;colon", "quote\"", strings.Repeat("a", 21), "new\nline"} {
		if err := ts.m.Publish(context.Background(), topic, msg); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("Publish(%q) = %v, want ErrInvalidTopic", topic, err)
		}
	}
	for _, topic := range []string{strings.Repeat("a", 20), "user:42:orders", "a.b_c-d@e/f=g+h,i#j"} {
		if err := ts.m.Publish(context.Background(), topic, msg); err != nil {
			t.Errorf("Publish(%q) = %v, want nil", topic, err)
		}
	}
}

func TestPublishAfterShutdown(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	id := bcConnect(t, c)
	go func() { // read until the close, so that the close handshake completes
		for {
			if _, _, err := c.ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	msg := bcData(t, "late", nil)
	bg := context.Background()
	for name, err := range map[string]error{
		"Publish":          ts.m.Publish(bg, "news", msg),
		"Broadcast":        ts.m.Broadcast(bg, msg),
		"BroadcastToUsers": ts.m.BroadcastToUsers(bg, msg, "alice"),
		"SendToClient":     ts.m.SendToClient(bg, id, msg),
	} {
		if !errors.Is(err, ErrShutdown) {
			t.Errorf("%s after Shutdown = %v, want ErrShutdown", name, err)
		}
	}
	if err := ts.m.Shutdown(ctx); !errors.Is(err, ErrShutdown) {
		t.Errorf("second Shutdown = %v, want ErrShutdown", err)
	}
}

// TestEncodeOnce checks that a publication is encoded once for all its recipients, not once
// per recipient.
func TestEncodeOnce(t *testing.T) {
	const subscribers = 50
	codec := &countingCodec{}
	ts := startServer(t, Config{Codec: codec, Authenticator: newJWT(t), MaxConnsPerUser: -1})
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	var clients []*client
	for i := 0; i < subscribers; i++ {
		c := bcDialUser(t, ts, users[i%len(users)])
		if r := c.subscribe("prices"); r.Type != TypeSubscribeSuccess {
			t.Fatalf("%s", r.raw)
		}
		clients = append(clients, c)
	}
	outsider := bcDialUser(t, ts, "outsider") // not subscribed, not among the users addressed

	check := func(name string, want int, publish func(msg *Message) error) {
		t.Helper()
		msg := bcData(t, name, map[string]any{"v": 1})
		before := codec.encodes.Load()
		if err := publish(msg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := codec.encodes.Load() - before; n != 1 {
			t.Errorf("%s to %d connections: %d Encode calls, want 1", name, want, n)
		}
		for i, c := range clients[:want] {
			if w := c.expect(TypeData); w.ID != msg.ID {
				t.Fatalf("%s: client %d got %s", name, i, w.raw)
			}
		}
	}
	ctx := context.Background()
	check("publish", subscribers, func(msg *Message) error { return ts.m.Publish(ctx, "prices", msg) })
	check("broadcast", subscribers, func(msg *Message) error { return ts.m.Broadcast(ctx, msg) })
	check("users", subscribers, func(msg *Message) error { return ts.m.BroadcastToUsers(ctx, msg, users...) })
	// The outsider got the broadcast and nothing else.
	if w := outsider.expect(TypeData); w.field("resource") != "broadcast" {
		t.Fatalf("outsider got %s", w.raw)
	}
	bcQuiet(t, outsider, "outsider")
}

// TestEncodeOncePerCodec publishes to a topic subscribed on two endpoints with different
// codecs: one Encode per codec.
func TestEncodeOncePerCodec(t *testing.T) {
	main, other := &countingCodec{}, &countingCodec{}
	ts, eps := bcStartEndpoints(t, Config{Codec: main}, map[string]EndpointConfig{"/ws2": {Codec: other}})
	ts2 := eps["/ws2"]

	var clients []*client
	for i := 0; i < 3; i++ {
		for _, s := range []*testServer{ts, ts2} {
			c := s.dial()
			if r := c.subscribe("scores"); r.Type != TypeSubscribeSuccess {
				t.Fatalf("%s", r.raw)
			}
			clients = append(clients, c)
		}
	}
	if conn := ts.m.Conn(bcConnect(t, clients[1])); conn == nil || conn.Codec() != Codec(other) {
		t.Fatalf("a /ws2 connection does not use the endpoint's codec")
	}

	m0, o0 := main.encodes.Load(), other.encodes.Load()
	msg := bcData(t, "score", map[string]any{"home": 2, "away": 1})
	if err := ts.m.Publish(context.Background(), "scores", msg); err != nil {
		t.Fatal(err)
	}
	if dm, do := main.encodes.Load()-m0, other.encodes.Load()-o0; dm != 1 || do != 1 {
		t.Fatalf("Encode calls: %d by the /ws codec, %d by the /ws2 codec; want 1 and 1", dm, do)
	}
	for i, c := range clients {
		if w := c.expect(TypeData); w.ID != msg.ID || w.Topic != "scores" {
			t.Fatalf("client %d got %s", i, w.raw)
		}
	}
}

func TestDeliveryOrderOneConnection(t *testing.T) {
	const n = 1000
	// The queue holds every message, so that the test is about order, not about how fast the
	// client reads.
	ts := startServer(t, Config{SendQueueSize: n + 10})
	c := ts.dial()
	id := bcConnect(t, c)
	if r := c.subscribe("seq"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	ctx := context.Background()
	for i := 0; i < n; i++ {
		msg := bcData(t, "n", map[string]any{"i": i})
		var err error
		if i%2 == 0 {
			err = ts.m.Publish(ctx, "seq", msg)
		} else {
			err = ts.m.SendToClient(ctx, id, msg)
		}
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	got, err := bcReadN(c, n, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range got {
		if s := bcSeq(w, "i"); s != i {
			t.Fatalf("message %d carries i=%d (%s)", i, s, w.raw)
		}
	}
	bcQuiet(t, c, "end")
}

// TestConcurrentPublishers runs many publishers on many topics at once (run it with -race):
// every subscriber gets every message of its topic, in each publisher's order.
func TestConcurrentPublishers(t *testing.T) {
	const (
		topics     = 8
		perTopic   = 2 // subscribers
		publishers = 8
		each       = 50 // messages per publisher per topic
	)
	ts := startServer(t, Config{SendQueueSize: -1})
	type sub struct {
		c     *client
		topic string
	}
	var subs []sub
	for i := 0; i < topics; i++ {
		topic := fmt.Sprintf("room:%d", i)
		for j := 0; j < perTopic; j++ {
			c := ts.dial()
			if r := c.subscribe(topic); r.Type != TypeSubscribeSuccess {
				t.Fatalf("%s", r.raw)
			}
			subs = append(subs, sub{c, topic})
		}
	}

	type result struct {
		sub sub
		got []wire
		err error
	}
	results := make(chan result, len(subs))
	for _, s := range subs {
		go func() {
			got, err := bcReadN(s.c, publishers*each, 60*time.Second)
			results <- result{sub: s, got: got, err: err}
		}()
	}

	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				// One message, reused across topics: Publish must not modify it.
				msg, err := NewData("tick", map[string]any{"p": p, "i": i})
				if err != nil {
					errs <- err
					return
				}
				for k := 0; k < topics; k++ {
					if err := ts.m.Publish(context.Background(), fmt.Sprintf("room:%d", (k+p)%topics), msg); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for range subs {
		r := <-results
		if r.err != nil {
			t.Fatalf("subscriber of %s: %v", r.sub.topic, r.err)
		}
		next := make([]int, publishers)
		for _, w := range r.got {
			p, i := bcSeq(w, "p"), bcSeq(w, "i")
			if w.Topic != r.sub.topic || p < 0 || p >= publishers {
				t.Fatalf("subscriber of %s got %s", r.sub.topic, w.raw)
			}
			if i != next[p] {
				t.Fatalf("subscriber of %s: publisher %d's message %d arrived when %d was expected", r.sub.topic, p, i, next[p])
			}
			next[p]++
		}
	}
	for _, s := range subs {
		bcQuiet(t, s.c, "end")
	}
	if st := ts.m.Stats(); st.SlowConsumers != 0 {
		t.Fatalf("SlowConsumers = %d with an unbounded queue", st.SlowConsumers)
	}
}
