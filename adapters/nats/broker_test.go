package nats_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard"
	sbnats "github.com/switchboardrt/switchboard/adapters/nats"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

func TestTopicPublishCrossNode(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	a, b, c := startNode(t, url, prefix), startNode(t, url, prefix), startNode(t, url, prefix)

	for _, topic := range []string{"news", "user:42:orders", "a.b", "=+,#@/_-"} {
		t.Run(topic, func(t *testing.T) {
			subB, subC, other := b.dial(t), c.dial(t), b.dial(t)
			if strings.HasPrefix(topic, "user:42") { // reserved to user 42
				subB.authenticate("42")
				subC.authenticate("42")
			}
			subB.subscribe(topic)
			subC.subscribe(topic)
			other.subscribe("other-" + topic)

			if err := a.m.Publish(context.Background(), topic, event(t, "e1")); err != nil {
				t.Fatal(err)
			}
			for _, cl := range []*client{subB, subC} {
				f := cl.expectEvent("e1")
				if f.Topic != topic {
					t.Errorf("topic %q, want %q", f.Topic, topic)
				}
			}
			other.expectNothing(200 * time.Millisecond)
		})
	}
}

func TestBroadcastToUsersCrossNode(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	a, b, c := startNode(t, url, prefix), startNode(t, url, prefix), startNode(t, url, prefix)

	aliceB1, aliceB2, aliceC := b.dial(t), b.dial(t), c.dial(t)
	bobC, anon := c.dial(t), b.dial(t)
	for _, cl := range []*client{aliceB1, aliceB2, aliceC} {
		cl.authenticate("alice")
	}
	bobC.authenticate("bob")

	if err := a.m.BroadcastToUsers(context.Background(), event(t, "for-alice"), "alice"); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{aliceB1, aliceB2, aliceC} {
		cl.expectEvent("for-alice")
	}
	bobC.expectNothing(200 * time.Millisecond)
	anon.expectNothing(10 * time.Millisecond)
}

func TestBroadcastCrossNode(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	a, b, c := startNode(t, url, prefix), startNode(t, url, prefix), startNode(t, url, prefix)
	clients := []*client{a.dial(t), b.dial(t), b.dial(t), c.dial(t)}
	if err := a.m.Broadcast(context.Background(), event(t, "all")); err != nil {
		t.Fatal(err)
	}
	for _, cl := range clients {
		cl.expectEvent("all")
	}
}

func TestSendToClientCrossNode(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)
	target, bystander := b.dial(t), b.dial(t)
	if err := a.m.SendToClient(context.Background(), target.id, event(t, "direct")); err != nil {
		t.Fatal(err)
	}
	target.expectEvent("direct")
	bystander.expectNothing(200 * time.Millisecond)
}

// SendToClient with an ID no node has: the publishing node cannot know that, so the call
// succeeds, and the publication reaches nobody. Clients on the publishing node and on
// another get, first, a publication sent to them after it on the same subject.
func TestSendToUnknownClientCrossNode(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)
	onA, onB := a.dial(t), b.dial(t)
	ctx := context.Background()
	if err := a.m.SendToClient(ctx, "no-such-client", event(t, "lost")); err != nil {
		t.Fatalf("SendToClient(unknown) = %v, want nil: with a cluster broker the client may be on another node", err)
	}
	for _, c := range []*client{onA, onB} {
		if err := a.m.SendToClient(ctx, c.id, event(t, "direct")); err != nil {
			t.Fatal(err)
		}
		c.expectEvent("direct")
	}
}

// A node is subscribed to a topic's subject exactly while it has local subscribers.
func TestTopicSubscriptionFollowsLocalSubscribers(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)
	base := b.b.Conn().NumSubscriptions() // the node subject

	c1, c2 := b.dial(t), b.dial(t)
	c1.subscribe("room:1")
	c2.subscribe("room:1")
	if got := b.b.TopicSubscriptions(); got != 1 {
		t.Fatalf("TopicSubscriptions = %d, want 1", got)
	}
	if got := b.b.Conn().NumSubscriptions(); got != base+1 {
		t.Fatalf("NumSubscriptions = %d, want %d", got, base+1)
	}
	if a.b.Subscribed("room:1") {
		t.Fatal("node A subscribed without local subscribers")
	}

	c1.unsubscribe("room:1")
	if !b.b.Subscribed("room:1") {
		t.Fatal("unsubscribed while a local subscriber is left")
	}
	_ = c2.ws.CloseNow() // the last subscriber goes away without unsubscribing
	waitFor(t, 5*time.Second, "the topic subscription to go", func() bool {
		return b.b.TopicSubscriptions() == 0 && b.b.Conn().NumSubscriptions() == base
	})

	// And publications of the topic no longer reach the node: a new subscriber on A sees
	// the publication, a client of B that subscribes to something else does not.
	onA := a.dial(t)
	onA.subscribe("room:1")
	if err := b.m.Publish(context.Background(), "room:1", event(t, "after")); err != nil {
		t.Fatal(err)
	}
	onA.expectEvent("after")
}

func TestSubjects(t *testing.T) {
	url := testenv.NATSURL(t)
	b := newBroker(t, url, "app.sb")
	defer b.Close()
	if got, want := b.TopicSubject("user:42:orders"), "app.sb.t.dXNlcjo0MjpvcmRlcnM"; got != want {
		t.Errorf("TopicSubject = %q, want %q", got, want)
	}
	if got := b.NodeSubject(); got != "app.sb.node" {
		t.Errorf("NodeSubject = %q", got)
	}
	for _, bad := range []string{"a..b", ".a", "a.*", "a >", "a b"} {
		if _, err := sbnats.New(sbnats.Options{URL: url, Prefix: bad}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

// Subscribe/unsubscribe calls are counted, tolerant of an unsubscribe arriving first.
func TestSubscribeCounting(t *testing.T) {
	b := newBroker(t, testenv.NATSURL(t), uniquePrefix(t))
	defer b.Close()
	if err := b.Start(func(*switchboard.Publication) {}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = b.UnsubscribeTopic(ctx, "x") // ignored
	_ = b.SubscribeTopic(ctx, "x")
	_ = b.SubscribeTopic(ctx, "x")
	_ = b.UnsubscribeTopic(ctx, "x")
	if !b.Subscribed("x") {
		t.Fatal("unsubscribed after 2 subscribes and 1 unsubscribe")
	}
	_ = b.UnsubscribeTopic(ctx, "x")
	if b.Subscribed("x") || b.TopicSubscriptions() != 0 {
		t.Fatal("still subscribed")
	}
}

func TestHealthAndClose(t *testing.T) {
	b := newBroker(t, testenv.NATSURL(t), uniquePrefix(t))
	if err := b.Start(func(*switchboard.Publication) {}); err != nil {
		t.Fatal(err)
	}
	if !b.Healthy() {
		t.Fatal("not healthy")
	}
	if err := b.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Healthy() || b.Health(context.Background()) == nil {
		t.Fatal("healthy after Close")
	}
	msg := event(t, "x")
	if err := b.Publish(context.Background(), &switchboard.Publication{Kind: switchboard.TargetAll, Message: msg}); !errors.Is(err, sbnats.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartFailsWithoutServer(t *testing.T) {
	_, err := sbnats.New(sbnats.Options{URL: "nats://127.0.0.1:1", NATSOptions: []nats.Option{nats.Timeout(time.Second)}})
	if err == nil {
		t.Fatal("New succeeded without a server")
	}
}

// Kill the NATS server: Publish fails. Restart it on the same port: the nodes, not
// restarted, exchange publications again.
func TestBrokerFailureAndRecovery(t *testing.T) {
	srv := startPrivateServer(t)
	prefix := uniquePrefix(t)
	fast := []nats.Option{nats.ReconnectWait(100 * time.Millisecond), nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond)}
	a, b := startNode(t, srv.url(), prefix, fast...), startNode(t, srv.url(), prefix, fast...)
	sub := b.dial(t)
	sub.subscribe("orders")
	ctx := context.Background()
	if err := a.m.Publish(ctx, "orders", event(t, "before")); err != nil {
		t.Fatal(err)
	}
	sub.expectEvent("before")

	srv.stop()
	waitFor(t, 10*time.Second, "node A to notice the server is gone", func() bool { return !a.b.Healthy() })
	if err := a.m.Publish(ctx, "orders", event(t, "during")); !errors.Is(err, sbnats.ErrNotConnected) {
		t.Fatalf("Publish with the server down: %v, want ErrNotConnected", err)
	}
	if err := a.m.Broadcast(ctx, event(t, "during")); err == nil {
		t.Fatal("Broadcast with the server down succeeded")
	}
	if err := a.b.Health(ctx); !errors.Is(err, sbnats.ErrNotConnected) {
		t.Fatalf("Health: %v", err)
	}

	srv.start()
	waitFor(t, 15*time.Second, "both nodes to reconnect", func() bool { return a.b.Healthy() && b.b.Healthy() })
	// The subscription is made again on reconnection; publish until it arrives. One read
	// waits for it all along: a read that times out closes the WebSocket.
	type read struct {
		f   frame
		err error
	}
	got := make(chan read, 1)
	go func() {
		f, err := sub.tryRead(10 * time.Second)
		got <- read{f, err}
	}()
	for i := 0; ; i++ {
		if err := a.m.Publish(ctx, "orders", event(t, "after")); err != nil {
			t.Fatalf("Publish after reconnection: %v", err)
		}
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatalf("no publication after reconnection (%d tries): %v", i+1, r.err)
			}
			if r.f.Type != "EVENT" {
				t.Fatalf("got %s", r.f.raw)
			}
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	// And users publications (node subject) flow as well.
	other := b.dial(t)
	if err := a.m.SendToClient(ctx, other.id, event(t, "direct")); err != nil {
		t.Fatal(err)
	}
	other.expectEvent("direct")
}

func BenchmarkCrossNodePublish(b *testing.B) {
	url := testenv.NATSURL(b)
	prefix := uniquePrefix(b)
	na, nb := startNode(b, url, prefix), startNode(b, url, prefix)
	sub := nb.dial(b)
	sub.subscribe("bench")
	ctx := context.Background()

	// Each message carries its send time; the client on B records the latency.
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < b.N {
			f, err := sub.tryRead(30 * time.Second)
			if err != nil {
				b.Errorf("read: %v", err)
				return
			}
			var p struct {
				Data struct {
					T int64 `json:"t"`
				} `json:"data"`
			}
			if err := jsonUnmarshal(f.Payload, &p); err != nil {
				b.Errorf("payload: %v", err)
				return
			}
			mu.Lock()
			lat = append(lat, time.Duration(time.Now().UnixNano()-p.Data.T))
			mu.Unlock()
		}
	}()

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		msg, _ := switchboard.NewEvent("tick", map[string]any{"t": time.Now().UnixNano(), "i": strconv.Itoa(i)})
		for {
			err := na.m.Publish(ctx, "bench", msg)
			if err == nil {
				break
			}
			b.Fatalf("publish: %v", err)
		}
		// Stay under the client's send queue: a slow consumer would be disconnected.
		for {
			mu.Lock()
			behind := i + 1 - len(lat)
			mu.Unlock()
			if behind < 128 {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// Close leaves no goroutine behind: neither the NATS client's nor the subscriptions'.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	url := testenv.NATSURL(t)
	base := runtime.NumGoroutine()
	b := newBroker(t, url, uniquePrefix(t))
	if err := b.Start(func(*switchboard.Publication) {}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := b.SubscribeTopic(context.Background(), "t"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}

// A lost connection to NATS is logged as a warning; the disconnection Close itself causes
// is not (a node's every graceful shutdown would otherwise warn).
func TestDisconnectionWarnings(t *testing.T) {
	var closedLog lockedBuffer
	b, err := sbnats.New(sbnats.Options{URL: testenv.NATSURL(t), Prefix: uniquePrefix(t),
		Logger: slog.New(slog.NewTextHandler(&closedLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(func(*switchboard.Publication) {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // returns after the client's callbacks have run
		t.Fatal(err)
	}
	if s := closedLog.String(); strings.Contains(s, "level=WARN") || !strings.Contains(s, "disconnected from NATS on Close") {
		t.Fatalf("Close logged:\n%s\nwant a debug line and no warning", s)
	}

	srv := startPrivateServer(t)
	var lostLog lockedBuffer
	b, err = sbnats.New(sbnats.Options{URL: srv.url(), Prefix: uniquePrefix(t),
		Logger: slog.New(slog.NewTextHandler(&lostLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	srv.stop()
	waitFor(t, 10*time.Second, "a warning about the lost connection", func() bool {
		return strings.Contains(lostLog.String(), `level=WARN msg="switchboard/nats: disconnected from NATS"`)
	})
}
