package switchboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// histPos is a position as the wire carries it.
type histPos struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// posOf returns the "seq" and "epoch" of a frame.
func posOf(t testing.TB, w wire) histPos {
	t.Helper()
	var p histPos
	if err := json.Unmarshal(w.raw, &p); err != nil {
		t.Fatalf("frame %s: %v", w.raw, err)
	}
	return p
}

// subReply is the payload of SUBSCRIBE_SUCCESS.
type subReply struct {
	Subscriptions []string           `json:"subscriptions"`
	Recovered     map[string]bool    `json:"recovered"`
	Positions     map[string]histPos `json:"positions"`
}

var histReqID atomic.Int64

// histSubscribe sends SUBSCRIBE with an optional "recover" object and returns the reply,
// which must be SUBSCRIBE_SUCCESS and must come before anything else.
func histSubscribe(t testing.TB, c *client, recover map[string]histPos, topics ...string) subReply {
	t.Helper()
	payload := map[string]any{"subscriptions": topics}
	if recover != nil {
		payload["recover"] = recover
	}
	w := c.request(TypeSubscribe, payload, fmt.Sprintf("sub-%d", histReqID.Add(1)))
	if w.Type != TypeSubscribeSuccess {
		t.Fatalf("SUBSCRIBE answered with %s", w.raw)
	}
	var r subReply
	if err := json.Unmarshal(w.Payload, &r); err != nil {
		t.Fatalf("SUBSCRIBE_SUCCESS %s: %v", w.raw, err)
	}
	return r
}

// histPublish publishes DATA {"i": from..from+n-1} to topic.
func histPublish(t testing.TB, m *Manager, topic string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		msg, err := NewData("tick", map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Publish(context.Background(), topic, msg); err != nil {
			t.Fatalf("publish %d to %s: %v", i, topic, err)
		}
	}
}

// histExpect reads n publications of topic and checks they carry seq first..first+n-1 in
// epoch and payload i from..from+n-1.
func histExpect(t testing.TB, c *client, topic string, epoch string, first uint64, from, n int) {
	t.Helper()
	for k := 0; k < n; k++ {
		w := c.expect(TypeData)
		p := posOf(t, w)
		if w.Topic != topic || p.Seq != first+uint64(k) || p.Epoch != epoch || bcSeq(w, "i") != from+k {
			t.Fatalf("publication %d: got %s, want topic %s seq %d epoch %s i %d", k, w.raw, topic, first+uint64(k), epoch, from+k)
		}
	}
}

// testClock is a clock for the in-memory history that moves only when told.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) now() int64              { return c.ns.Load() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// histBroker returns an in-memory broker whose history runs on a test clock.
func histBroker() (*MemoryBroker, *testClock) {
	clock := &testClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	b := NewMemoryBroker()
	b.hist.clock = clock.now
	return b, clock
}

func chatRules(size int, ttl time.Duration) []HistoryRule {
	return []HistoryRule{{Pattern: "chat:*", Size: size, TTL: ttl}}
}

// TestHistoryRecoverMissed: a client that reconnects with its position gets exactly the
// publications it missed, in order, after SUBSCRIBE_SUCCESS {recovered: true}, then the live
// ones, each once.
func TestHistoryRecoverMissed(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(100, time.Hour)})

	a := ts.dial()
	r := histSubscribe(t, a, nil, "chat:1")
	start, ok := r.Positions["chat:1"]
	if !ok || start.Seq != 0 || start.Epoch == "" || r.Recovered != nil {
		t.Fatalf("fresh SUBSCRIBE_SUCCESS %+v: want positions chat:1 = seq 0 with an epoch, no recovered", r)
	}
	epoch := start.Epoch
	histPublish(t, ts.m, "chat:1", 0, 3)
	histExpect(t, a, "chat:1", epoch, 1, 0, 3)
	_ = a.ws.CloseNow()

	histPublish(t, ts.m, "chat:1", 3, 5) // missed: seq 4..8

	b := ts.dial()
	r = histSubscribe(t, b, map[string]histPos{"chat:1": {Seq: 3, Epoch: epoch}}, "chat:1")
	if !r.Recovered["chat:1"] || r.Positions["chat:1"] != (histPos{8, epoch}) {
		t.Fatalf("recovering SUBSCRIBE_SUCCESS %+v: want recovered, position 8", r)
	}
	histExpect(t, b, "chat:1", epoch, 4, 3, 5)
	histPublish(t, ts.m, "chat:1", 8, 2)
	histExpect(t, b, "chat:1", epoch, 9, 8, 2)
	bcQuiet(t, b, "end") // nothing twice
}

// TestHistoryNotRecovered: every reason a recovery fails gives recovered: false, no history,
// the current position, and then the live publications from that position on.
func TestHistoryNotRecovered(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*Config)
		// setup publishes 3 (seq 1..3) before the client's position {1, epoch} is taken,
		// then may publish more and move the clock; it returns the position to recover from.
		setup func(t *testing.T, m *Manager, clock *testClock, epoch string) histPos
		topic string
	}{
		{name: "trimmed by Size", cfg: func(c *Config) { c.History = chatRules(3, time.Hour) },
			setup: func(t *testing.T, m *Manager, _ *testClock, epoch string) histPos {
				histPublish(t, m, "chat:1", 3, 3) // seq 4..6: seq 2 and 3 are gone
				return histPos{1, epoch}
			}},
		{name: "expired by TTL", cfg: func(c *Config) { c.History = chatRules(100, time.Minute) },
			setup: func(t *testing.T, m *Manager, clock *testClock, epoch string) histPos {
				clock.advance(40 * time.Second)
				histPublish(t, m, "chat:1", 3, 1) // seq 4 keeps the stream (and its epoch) alive
				clock.advance(30 * time.Second)   // seq 1..3 are 70 s old
				return histPos{1, epoch}
			}},
		{name: "epoch changed (stream idle past TTL)", cfg: func(c *Config) { c.History = chatRules(100, time.Minute) },
			setup: func(t *testing.T, m *Manager, clock *testClock, epoch string) histPos {
				clock.advance(2 * time.Minute)
				histPublish(t, m, "chat:1", 3, 1) // seq 1 of a new epoch
				return histPos{3, epoch}
			}},
		{name: "more than RecoverLimit", cfg: func(c *Config) { c.History = chatRules(100, time.Hour); c.RecoverLimit = 3 },
			setup: func(t *testing.T, m *Manager, _ *testClock, epoch string) histPos {
				histPublish(t, m, "chat:1", 3, 3) // 5 missed after seq 1
				return histPos{1, epoch}
			}},
		{name: "unknown epoch", cfg: func(c *Config) { c.History = chatRules(100, time.Hour) },
			setup: func(*testing.T, *Manager, *testClock, string) histPos { return histPos{1, "not-an-epoch"} }},
		{name: "position beyond the stream", cfg: func(c *Config) { c.History = chatRules(100, time.Hour) },
			setup: func(_ *testing.T, _ *Manager, _ *testClock, epoch string) histPos { return histPos{50, epoch} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, clock := histBroker()
			cfg := Config{Broker: b}
			tc.cfg(&cfg)
			ts := startServer(t, cfg)
			histPublish(t, ts.m, "chat:1", 0, 3)
			now, err := ts.m.History(context.Background(), "chat:1", nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			from := tc.setup(t, ts.m, clock, now.Position.Epoch)

			c := ts.dial()
			r := histSubscribe(t, c, map[string]histPos{"chat:1": from}, "chat:1")
			cur, err := ts.m.History(context.Background(), "chat:1", nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := histPos{cur.Position.Seq, cur.Position.Epoch}
			if ok, present := r.Recovered["chat:1"]; ok || !present || r.Positions["chat:1"] != want {
				t.Fatalf("SUBSCRIBE_SUCCESS %+v: want recovered false, position %+v", r, want)
			}
			// No history follows: the next frame is the next live publication.
			histPublish(t, ts.m, "chat:1", 100, 1)
			histExpect(t, c, "chat:1", want.Epoch, want.Seq+1, 100, 1)
			bcQuiet(t, c, "end")
		})
	}
}

// TestHistoryRecoverWithoutRule: recovery asked for a topic without history is answered
// with recovered: false and no position; its publications carry no position.
func TestHistoryRecoverWithoutRule(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(100, time.Hour)})
	c := ts.dial()
	r := histSubscribe(t, c, map[string]histPos{"news": {Seq: 4, Epoch: "x"}}, "news", "chat:1")
	if ok, present := r.Recovered["news"]; ok || !present {
		t.Fatalf("recovered %v: want news false", r.Recovered)
	}
	if _, ok := r.Positions["news"]; ok {
		t.Fatalf("positions %v: news has no history", r.Positions)
	}
	if _, ok := r.Recovered["chat:1"]; ok {
		t.Fatalf("recovered %v: chat:1 was not asked to recover", r.Recovered)
	}
	if p, ok := r.Positions["chat:1"]; !ok || p.Epoch == "" {
		t.Fatalf("positions %v: want chat:1", r.Positions)
	}
	histPublish(t, ts.m, "news", 0, 1)
	w := c.expect(TypeData)
	if p := posOf(t, w); p != (histPos{}) || bytes.Contains(w.raw, []byte(`"seq"`)) {
		t.Fatalf("publication to a topic without history: %s", w.raw)
	}
	if _, err := ts.m.History(context.Background(), "news", nil, 0); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("History(news): %v, want ErrNoHistory", err)
	}
}

// TestHistoryAlreadySubscribed: SUBSCRIBE with recover for a topic the connection already
// has leaves it out of recovered and positions, and sends nothing twice.
func TestHistoryAlreadySubscribed(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(100, time.Hour)})
	c := ts.dial()
	r := histSubscribe(t, c, nil, "chat:1")
	epoch := r.Positions["chat:1"].Epoch
	histPublish(t, ts.m, "chat:1", 0, 3)
	histExpect(t, c, "chat:1", epoch, 1, 0, 3)
	r = histSubscribe(t, c, map[string]histPos{"chat:1": {Seq: 1, Epoch: epoch}}, "chat:1")
	if len(r.Recovered) != 0 || len(r.Positions) != 0 {
		t.Fatalf("SUBSCRIBE_SUCCESS %+v for a topic already subscribed: want neither recovered nor positions", r)
	}
	bcQuiet(t, c, "end")
}

// TestHistoryBadRecover: a malformed "recover" gets ERROR bad_message, subscribes nothing,
// and leaves the connection working.
func TestHistoryBadRecover(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(100, time.Hour)})
	c := ts.dial()
	id := bcConnect(t, c)
	bad := []string{
		`[]`, `"chat:1"`, `5`, `true`,
		`{"chat:1": 5}`, `{"chat:1": null}`, `{"chat:1": []}`, `{"chat:1": "3"}`,
		`{"chat:1": {}}`, `{"chat:1": {"seq": 3}}`, `{"chat:1": {"epoch": "e"}}`,
		`{"chat:1": {"seq": -1, "epoch": "e"}}`, `{"chat:1": {"seq": 1.5, "epoch": "e"}}`,
		`{"chat:1": {"seq": "3", "epoch": "e"}}`, `{"chat:1": {"seq": 1e2, "epoch": "e"}}`,
		`{"chat:1": {"seq": 18446744073709551616, "epoch": "e"}}`,
		`{"chat:1": {"seq": null, "epoch": "e"}}`, `{"chat:1": {"seq": 3, "epoch": null}}`,
		`{"chat:1": {"seq": 3, "epoch": 7}}`, `{"chat:1": {"seq": 3, "epoch": {}}}`,
	}
	for i, rec := range bad {
		reqID := fmt.Sprintf("bad-%d", i)
		c.send(`{"type":"SUBSCRIBE","id":"` + reqID + `","payload":{"subscriptions":["chat:1"],"recover":` + rec + `}}`)
		w := c.expect(TypeError)
		if w.CorrelationID != reqID || w.field("code") != string(CodeBadMessage) {
			t.Fatalf("recover %s: got %s, want ERROR bad_message", rec, w.raw)
		}
		if msg, _ := w.field("message").(string); !strings.Contains(msg, "recover") {
			t.Errorf("recover %s: error message %q does not say what is wrong", rec, msg)
		}
		if subs := ts.m.Conn(id).Subscriptions(); len(subs) != 0 {
			t.Fatalf("recover %s: subscribed to %v", rec, subs)
		}
	}
	// Still usable, and "recover": null means none.
	c.send(`{"type":"SUBSCRIBE","id":"ok","payload":{"subscriptions":["chat:1"],"recover":null}}`)
	if w := c.expect(TypeSubscribeSuccess); w.CorrelationID != "ok" {
		t.Fatalf("got %s", w.raw)
	}
	// A position for a topic not being subscribed is ignored.
	r := histSubscribe(t, c, map[string]histPos{"chat:9": {Seq: 1, Epoch: "e"}}, "chat:2")
	if len(r.Recovered) != 0 {
		t.Fatalf("recovered %v: chat:9 was not subscribed", r.Recovered)
	}
}

// TestHistoryGoAPI: Conn.SubscribeWith recovers like SUBSCRIBE; Conn.Subscribe does not read
// history but still delivers positions.
func TestHistoryGoAPI(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(100, time.Hour)})
	histPublish(t, ts.m, "chat:1", 0, 5)
	cur, err := ts.m.History(context.Background(), "chat:1", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	epoch := cur.Position.Epoch

	c := ts.dial()
	conn := ts.m.Conn(bcConnect(t, c))
	res, err := conn.SubscribeWith(context.Background(), SubscribeOptions{
		Recover: map[string]StreamPosition{"chat:1": {Seq: 2, Epoch: epoch}},
	}, "chat:1", "chat:2")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered["chat:1"] || res.Positions["chat:1"] != (StreamPosition{5, epoch}) {
		t.Fatalf("SubscribeWith: %+v", res)
	}
	if p, ok := res.Positions["chat:2"]; !ok || p.Seq != 0 || p.Epoch == "" {
		t.Fatalf("SubscribeWith: position of chat:2 %+v", res.Positions)
	}
	histExpect(t, c, "chat:1", epoch, 3, 2, 3)

	d := ts.dial()
	dconn := ts.m.Conn(bcConnect(t, d))
	if err := dconn.Subscribe(context.Background(), "chat:1"); err != nil {
		t.Fatal(err)
	}
	histPublish(t, ts.m, "chat:1", 5, 1)
	histExpect(t, c, "chat:1", epoch, 6, 5, 1)
	histExpect(t, d, "chat:1", epoch, 6, 5, 1)
	dconn.mu.Lock()
	rec := dconn.rec
	dconn.mu.Unlock()
	if rec != nil {
		t.Fatalf("connection keeps recovery state after subscribing: %+v", rec)
	}
}

// TestHistoryPublishWithPosition: the position returned is the one the subscribers get with
// the message, and the one to recover from; topics without history and presence events get
// none.
func TestHistoryPublishWithPosition(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(100, time.Hour)})
	ctx := context.Background()
	c := ts.dial()
	bcConnect(t, c)
	histSubscribe(t, c, nil, "chat:1", "plain")
	var got []StreamPosition
	for i := 0; i < 3; i++ {
		msg, _ := NewData("tick", map[string]int{"i": i})
		pos, err := ts.m.PublishWithPosition(ctx, "chat:1", msg)
		if err != nil {
			t.Fatal(err)
		}
		w := c.expect(TypeData)
		if p := posOf(t, w); p.Seq != pos.Seq || p.Epoch != pos.Epoch || pos.Seq != uint64(i+1) || pos.Epoch == "" {
			t.Fatalf("PublishWithPosition returned %+v; the subscriber got %s", pos, w.raw)
		}
		got = append(got, pos)
	}
	// A client that loaded the state at the first position recovers exactly the others.
	d := ts.dial()
	bcConnect(t, d)
	r := histSubscribe(t, d, map[string]histPos{"chat:1": {Seq: got[0].Seq, Epoch: got[0].Epoch}}, "chat:1")
	if !r.Recovered["chat:1"] {
		t.Fatalf("SUBSCRIBE_SUCCESS %+v: want recovered", r)
	}
	histExpect(t, d, "chat:1", got[0].Epoch, 2, 1, 2)

	msg, _ := NewData("tick", nil)
	if pos, err := ts.m.PublishWithPosition(ctx, "plain", msg); err != nil || pos != (StreamPosition{}) {
		t.Fatalf("topic without history: %+v, %v; want the zero position", pos, err)
	}
	if w := c.expect(TypeData); w.Topic != "plain" {
		t.Fatalf("got %s", w.raw)
	}
	if pos, err := ts.m.PublishWithPosition(ctx, "chat:1", &Message{Type: TypeJoin}); err != nil || pos != (StreamPosition{}) {
		t.Fatalf("JOIN: %+v, %v; want the zero position", pos, err)
	}
	if _, err := ts.m.PublishWithPosition(ctx, "bad topic", msg); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("invalid topic: %v", err)
	}
}

// TestHistoryManagerHistory: Manager.History reads positions and pages of publications.
func TestHistoryManagerHistory(t *testing.T) {
	ts := startServer(t, Config{History: chatRules(4, time.Hour)})
	ctx := context.Background()
	if _, err := ts.m.History(ctx, "bad topic", nil, 0); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("History of a bad topic: %v", err)
	}
	histPublish(t, ts.m, "chat:1", 0, 6) // kept: seq 3..6
	cur, err := ts.m.History(ctx, "chat:1", nil, 10)
	if err != nil || cur.Position.Seq != 6 || len(cur.Publications) != 0 || !cur.Complete {
		t.Fatalf("History(nil): %+v, %v", cur, err)
	}
	all, err := ts.m.History(ctx, "chat:1", &StreamPosition{Epoch: cur.Position.Epoch}, -1)
	if err != nil || all.Complete || len(all.Publications) != 4 || all.Publications[0].Seq != 3 {
		t.Fatalf("History(seq 0): %+v, %v; want seq 3..6, incomplete", all, err)
	}
	page, err := ts.m.History(ctx, "chat:1", &StreamPosition{Seq: 3, Epoch: cur.Position.Epoch}, 2)
	if err != nil || page.Complete || len(page.Publications) != 2 || page.Publications[1].Seq != 5 || page.Publications[1].Topic != "chat:1" {
		t.Fatalf("History(seq 3, limit 2): %+v, %v", page, err)
	}
	rest, err := ts.m.History(ctx, "chat:1", &StreamPosition{Seq: 5, Epoch: cur.Position.Epoch}, 2)
	if err != nil || !rest.Complete || len(rest.Publications) != 1 || rest.Publications[0].Seq != 6 {
		t.Fatalf("History(seq 5, limit 2): %+v, %v", rest, err)
	}
	if err := ts.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.m.History(ctx, "chat:1", nil, 0); !errors.Is(err, ErrShutdown) {
		t.Fatalf("History after Shutdown: %v", err)
	}
}

// logBuffer collects log records for tests.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// plainBroker hides the in-memory broker's history methods: a broker that keeps no history.
type plainBroker struct{ Broker }

// TestHistoryBrokerWithoutHistory: with a broker that keeps no history, New logs an error,
// publishing works without positions and recovery answers false.
func TestHistoryBrokerWithoutHistory(t *testing.T) {
	var logs logBuffer
	ts := startServer(t, Config{
		Broker:  plainBroker{NewMemoryBroker()},
		History: append([]HistoryRule{{Pattern: "[", Size: 1}}, chatRules(100, time.Hour)...),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})
	for _, want := range []string{"keeps no history", `history rule \"[\": malformed pattern`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q does not mention %q", logs.String(), want)
		}
	}
	c := ts.dial()
	r := histSubscribe(t, c, map[string]histPos{"chat:1": {Seq: 1, Epoch: "e"}}, "chat:1")
	if ok, present := r.Recovered["chat:1"]; ok || !present || len(r.Positions) != 0 {
		t.Fatalf("SUBSCRIBE_SUCCESS %+v: want recovered false, no positions", r)
	}
	histPublish(t, ts.m, "chat:1", 0, 1)
	if w := c.expect(TypeData); bytes.Contains(w.raw, []byte(`"seq"`)) {
		t.Fatalf("publication without history carries a position: %s", w.raw)
	}
	if _, err := ts.m.History(context.Background(), "chat:1", nil, 0); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("History: %v, want ErrNoHistory", err)
	}
}

// TestHistoryPresenceEventsNotKept: JOIN and LEAVE on a topic with history reach the
// subscribers without a position and are not kept.
func TestHistoryPresenceEventsNotKept(t *testing.T) {
	ts := startServer(t, Config{
		History:        chatRules(100, time.Hour),
		PresenceEvents: func(string) bool { return true },
	})
	a := ts.dial()
	histSubscribe(t, a, nil, "chat:1")
	if w := a.expect(TypeJoin); bytes.Contains(w.raw, []byte(`"seq"`)) {
		t.Fatalf("JOIN with a position: %s", w.raw)
	}
	b := ts.dial()
	histSubscribe(t, b, nil, "chat:1")
	a.expect(TypeJoin)
	cur, err := ts.m.History(context.Background(), "chat:1", nil, 0)
	if err != nil || cur.Position.Seq != 0 {
		t.Fatalf("History after two JOINs: %+v, %v; want nothing kept", cur, err)
	}
}

// TestHistoryRecoveryOverQueue: a recovery larger than SendQueueSize goes through, and the
// slow-consumer rule applies again afterwards.
func TestHistoryRecoveryOverQueue(t *testing.T) {
	const queue = 4
	var gone limDisconnects
	ts := startServer(t, Config{History: chatRules(100, time.Hour), SendQueueSize: queue, OnDisconnect: gone.hook})
	histPublish(t, ts.m, "chat:1", 0, 1)
	cur, _ := ts.m.History(context.Background(), "chat:1", nil, 0)
	epoch := cur.Position.Epoch
	histPublish(t, ts.m, "chat:1", 1, 30) // seq 2..31

	c := limDialSmallBuffer(t, ts)
	id := bcConnect(t, c)
	r := histSubscribe(t, c, map[string]histPos{"chat:1": {Seq: 1, Epoch: epoch}}, "chat:1")
	if !r.Recovered["chat:1"] {
		t.Fatalf("SUBSCRIBE_SUCCESS %+v", r)
	}
	histExpect(t, c, "chat:1", epoch, 2, 1, 30)
	if codes, _ := gone.get(id); len(codes) != 0 {
		t.Fatalf("closed during recovery: %v", codes)
	}

	// From here on the client does not read: the queue overflows and it is closed with 1013.
	pad := strings.Repeat("x", 16<<10)
	for i := 0; i < 2000; i++ {
		if codes, _ := gone.get(id); len(codes) > 0 {
			break
		}
		msg, _ := NewData("big", map[string]string{"pad": pad})
		if err := ts.m.Publish(context.Background(), "chat:1", msg); err != nil {
			t.Fatal(err)
		}
	}
	gone.waitCode(t, id, CloseTryAgainLater)
}

// hookBroker is the in-memory broker with a hook run around each history read. It stands
// for a cluster broker, whose deliveries may lag behind its history reads: the Manager
// does not know it as the in-memory broker, so it guards recovered topics against late
// duplicates. It lets a test place publications exactly at the seam of a recovery.
type hookBroker struct {
	*MemoryBroker
	deliver func(*Publication)
	before  func(topic string) error // before the read; an error fails the read
	after   func(topic string)       // after the read, before the result is used
}

func (b *hookBroker) Start(deliver func(*Publication)) error {
	b.deliver = deliver
	return b.MemoryBroker.Start(deliver)
}

func (b *hookBroker) History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error) {
	if b.before != nil {
		if err := b.before(topic); err != nil {
			return HistoryResult{}, err
		}
	}
	r, err := b.MemoryBroker.History(ctx, topic, q)
	if b.after != nil {
		b.after(topic)
	}
	return r, err
}

// TestHistorySeam: publications that happen while a recovery reads the history are sent
// once, in order, after the recovered ones; a late duplicate delivery (as a cluster broker
// may make) is dropped, and the guard ends with the next publication.
func TestHistorySeam(t *testing.T) {
	hb := &hookBroker{MemoryBroker: NewMemoryBroker()}
	ts := startServer(t, Config{Broker: hb, History: chatRules(100, time.Hour)})
	histPublish(t, ts.m, "chat:1", 0, 3)
	cur, _ := ts.m.History(context.Background(), "chat:1", nil, 0)
	epoch := cur.Position.Epoch

	var armed atomic.Bool
	hb.before = func(topic string) error {
		if armed.Load() {
			histPublish(t, ts.m, topic, 3, 2) // seq 4, 5: both held and in the read
		}
		return nil
	}
	hb.after = func(topic string) {
		if armed.Load() {
			histPublish(t, ts.m, topic, 5, 1) // seq 6: held only
		}
	}
	armed.Store(true)
	c := ts.dial()
	conn := ts.m.Conn(bcConnect(t, c))
	r := histSubscribe(t, c, map[string]histPos{"chat:1": {Seq: 1, Epoch: epoch}}, "chat:1")
	armed.Store(false)
	if !r.Recovered["chat:1"] || r.Positions["chat:1"] != (histPos{5, epoch}) {
		t.Fatalf("SUBSCRIBE_SUCCESS %+v: want recovered, position 5", r)
	}
	histExpect(t, c, "chat:1", epoch, 2, 1, 5) // seq 2..6, each once

	// A late delivery of seq 5 and 6 is dropped; seq 7 is delivered and ends the guard.
	old, err := ts.m.History(context.Background(), "chat:1", &StreamPosition{Seq: 4, Epoch: epoch}, -1)
	if err != nil || len(old.Publications) != 2 {
		t.Fatalf("History: %+v %v", old, err)
	}
	for _, pub := range old.Publications {
		hb.deliver(&Publication{Kind: TargetTopic, Topic: "chat:1", Message: pub})
	}
	histPublish(t, ts.m, "chat:1", 6, 1)
	histExpect(t, c, "chat:1", epoch, 7, 6, 1)
	bcQuiet(t, c, "guard")
	conn.mu.Lock()
	rec := conn.rec
	conn.mu.Unlock()
	if rec != nil {
		t.Fatalf("guard still set after a newer publication: %+v", rec.topics[0])
	}
	// Once live, nothing is filtered: a redelivery now goes through (the broker's business).
	hb.deliver(&Publication{Kind: TargetTopic, Topic: "chat:1", Message: old.Publications[0]})
	if w := c.expect(TypeData); posOf(t, w).Seq != 5 {
		t.Fatalf("got %s", w.raw)
	}
}

// TestHistorySeamFailures: a failing history read, and an unsubscription during the read,
// lose nothing for anyone and leave no state behind.
func TestHistorySeamFailures(t *testing.T) {
	hb := &hookBroker{MemoryBroker: NewMemoryBroker()}
	ts := startServer(t, Config{Broker: hb, History: chatRules(100, time.Hour)})
	histPublish(t, ts.m, "chat:1", 0, 2)
	cur, _ := ts.m.History(context.Background(), "chat:1", nil, 0)
	epoch := cur.Position.Epoch

	t.Run("read fails", func(t *testing.T) {
		hb.before = func(topic string) error {
			histPublish(t, ts.m, topic, 100, 1) // held while the read fails
			return errors.New("history store down")
		}
		defer func() { hb.before = nil }()
		c := ts.dial()
		conn := ts.m.Conn(bcConnect(t, c))
		r := histSubscribe(t, c, map[string]histPos{"chat:1": {Seq: 1, Epoch: epoch}}, "chat:1")
		if ok, present := r.Recovered["chat:1"]; ok || !present || len(r.Positions) != 0 {
			t.Fatalf("SUBSCRIBE_SUCCESS %+v: want recovered false, no position", r)
		}
		histExpect(t, c, "chat:1", epoch, 3, 100, 1) // the held one, not lost
		histPublish(t, ts.m, "chat:1", 101, 1)
		histExpect(t, c, "chat:1", epoch, 4, 101, 1)
		conn.mu.Lock()
		defer conn.mu.Unlock()
		if conn.rec != nil {
			t.Fatalf("recovery state left: %+v", conn.rec)
		}
	})
	t.Run("unsubscribed during the read", func(t *testing.T) {
		c := ts.dial()
		conn := ts.m.Conn(bcConnect(t, c))
		hb.after = func(topic string) {
			histPublish(t, ts.m, topic, 200, 1)
			conn.Unsubscribe(topic)
		}
		defer func() { hb.after = nil }()
		histSubscribe(t, c, map[string]histPos{"chat:1": {Seq: 1, Epoch: epoch}}, "chat:1")
		bcQuiet(t, c, "unsubscribed") // neither the recovered nor the held publications
		conn.mu.Lock()
		defer conn.mu.Unlock()
		if conn.rec != nil {
			t.Fatalf("recovery state left: %+v", conn.rec)
		}
	})
}

// TestHistoryRecoverySlack: the publications a recovery queues do not count against
// SendQueueSize until the writer has taken them, so live publications right after a large
// recovery are queued, not taken for a slow consumer. The connection's writer is held busy
// (as while it waits on a slow socket) so that the queue stays as the recovery left it.
func TestHistoryRecoverySlack(t *testing.T) {
	const queue = 4
	ts := startServer(t, Config{History: chatRules(100, time.Hour), SendQueueSize: queue})
	histPublish(t, ts.m, "chat:1", 0, 1)
	cur, _ := ts.m.History(context.Background(), "chat:1", nil, 0)
	epoch := cur.Position.Epoch
	histPublish(t, ts.m, "chat:1", 1, 20) // seq 2..21

	c := ts.dial()
	conn := ts.m.Conn(bcConnect(t, c))
	waitFor(t, "the writer to go idle", func() bool {
		conn.mu.Lock()
		defer conn.mu.Unlock()
		if conn.writing {
			return false
		}
		conn.writing = true // no writer runs until released below
		return true
	})
	res, err := conn.SubscribeWith(context.Background(), SubscribeOptions{
		Recover: map[string]StreamPosition{"chat:1": {Seq: 1, Epoch: epoch}},
	}, "chat:1")
	if err != nil || !res.Recovered["chat:1"] {
		t.Fatalf("SubscribeWith: %+v, %v", res, err)
	}
	histPublish(t, ts.m, "chat:1", 21, queue) // a full queue's worth of live ones on top
	conn.mu.Lock()
	n, closing := len(conn.queue), conn.closeReq
	conn.m.wg.Add(1) // release the writer, as enqueue starts it
	conn.mu.Unlock()
	go conn.writeLoop()
	if closing || n != 20+queue {
		t.Fatalf("queue held %d frames (closing %v), want %d recovered + %d live", n, closing, 20, queue)
	}
	histExpect(t, c, "chat:1", epoch, 2, 1, 20+queue)
	// The slack is gone with the frames: the queue's own limit applies again.
	conn.mu.Lock()
	slack := conn.slack
	conn.mu.Unlock()
	if slack != 0 {
		t.Fatalf("slack %d after the writer took the recovered frames", slack)
	}
}

// FuzzRecoverOf: any SUBSCRIBE payload gives positions or an ErrBadMessage, never a panic;
// what it accepts holds exactly the topics and values of the "recover" object.
func FuzzRecoverOf(f *testing.F) {
	for _, s := range []string{
		`{"subscriptions":["a"],"recover":{"a":{"seq":1,"epoch":"e"}}}`,
		`{"recover":null}`, `{"recover":{"a":{"seq":18446744073709551615,"epoch":""}}}`,
		`{"recover":{"a":{"seq":-1,"epoch":"e"}}}`, `{"recover":[]}`, `{}`, `[]`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := recoverOf(&Message{Type: TypeSubscribe, Payload: payload})
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		var req struct {
			Recover map[string]histPos `json:"recover"`
		}
		if err := json.Unmarshal(payload, &req); err != nil {
			return // accepted by recoverOf, e.g. an empty payload
		}
		if len(got) != len(req.Recover) {
			t.Fatalf("recoverOf(%s) = %v, want %v", payload, got, req.Recover)
		}
		for topic, p := range req.Recover {
			if got[topic] != (StreamPosition{p.Seq, p.Epoch}) {
				t.Fatalf("recoverOf(%s)[%q] = %+v, want %+v", payload, topic, got[topic], p)
			}
		}
	})
}
