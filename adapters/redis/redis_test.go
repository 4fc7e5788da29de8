package redis

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

const typ = switchboard.TypeEvent

func threeNodes(t *testing.T) (a, b, c *node) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	prefix := uniquePrefix(t)
	return startNode(t, url, prefix), startNode(t, url, prefix), startNode(t, url, prefix)
}

func TestTopicAcrossNodes(t *testing.T) {
	a, b, c := threeNodes(t)
	onA, onB, onC := a.dial(""), b.dial(""), c.dial("")
	other := c.dial("")
	for _, cl := range []*client{onA, onB, onC} {
		cl.subscribe("news")
	}
	other.subscribe("sport")
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if err := a.m.Publish(ctx, "news", msg(t, typ, i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, cl := range []*client{onA, onB, onC} {
		for i := 1; i <= 3; i++ { // in order: one topic is one channel on one connection
			if f := cl.expect(typ, float64(i)); f.Topic != "news" {
				t.Fatalf("topic %q in %s", f.Topic, f.raw)
			}
		}
	}
	other.quiet(300 * time.Millisecond)
}

func TestBroadcastToUsersAcrossNodes(t *testing.T) {
	a, b, c := threeNodes(t)
	alice := []*client{b.dial("alice"), c.dial("alice"), c.dial("alice")}
	bob, anon := c.dial("bob"), a.dial("")
	if n := len(c.m.UserConns("alice")); n != 2 {
		t.Fatalf("alice has %d connections on C, want 2", n)
	}
	if err := a.m.BroadcastToUsers(context.Background(), msg(t, typ, 7), "alice"); err != nil {
		t.Fatal(err)
	}
	for _, cl := range alice {
		cl.expect(typ, 7)
	}
	bob.quiet(300 * time.Millisecond)
	anon.quiet(10 * time.Millisecond)
}

func TestBroadcastAcrossNodes(t *testing.T) {
	a, b, c := threeNodes(t)
	all := []*client{a.dial(""), b.dial("carol"), c.dial(""), c.dial("dave")}
	if err := b.m.Broadcast(context.Background(), msg(t, typ, 3)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range all {
		cl.expect(typ, 3)
	}
}

func TestSendToClientAcrossNodes(t *testing.T) {
	a, b, _ := threeNodes(t)
	target, neighbour := b.dial(""), b.dial("")
	if b.m.Conn(target.id) == nil || a.m.Conn(target.id) != nil {
		t.Fatal("the target should be on B only")
	}
	if err := a.m.SendToClient(context.Background(), target.id, msg(t, typ, 9)); err != nil {
		t.Fatal(err)
	}
	target.expect(typ, 9)
	neighbour.quiet(300 * time.Millisecond)
}

// SendToClient with an ID no node has: the publishing node cannot know that, so the call
// succeeds, and the publication reaches nobody. Clients on the publishing node and on
// another get, first, a publication sent to them after it on the same channel.
func TestSendToUnknownClientAcrossNodes(t *testing.T) {
	a, b, _ := threeNodes(t)
	onA, onB := a.dial(""), b.dial("")
	ctx := context.Background()
	if err := a.m.SendToClient(ctx, "no-such-client", msg(t, typ, 1)); err != nil {
		t.Fatalf("SendToClient(unknown) = %v, want nil: with a cluster broker the client may be on another node", err)
	}
	for _, c := range []*client{onA, onB} {
		if err := a.m.SendToClient(ctx, c.id, msg(t, typ, 2)); err != nil {
			t.Fatal(err)
		}
		c.expect(typ, 2)
	}
}

// numsub returns the number of subscribers of a Redis channel.
func numsub(t *testing.T, n *node, ch string) int64 {
	t.Helper()
	res, err := rawClient(t, n.b.opts.URL).PubSubNumSub(context.Background(), ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res[ch]
}

func TestUnsubscribeWhenLastLocalSubscriberLeaves(t *testing.T) {
	a, b, _ := threeNodes(t)
	ch := b.b.TopicChannel("room")
	if got := numsub(t, b, ch); got != 0 {
		t.Fatalf("NUMSUB %s = %d before any subscriber, want 0", ch, got)
	}
	if got := numsub(t, b, b.b.NodeChannel()); got != 3 {
		t.Fatalf("NUMSUB %s = %d, want 3 (one per node)", b.b.NodeChannel(), got)
	}
	b1, b2, a1 := b.dial(""), b.dial(""), a.dial("")
	b1.subscribe("room")
	b2.subscribe("room")
	if got := numsub(t, b, ch); got != 1 {
		t.Fatalf("NUMSUB = %d with two subscribers on B, want 1", got)
	}
	a1.subscribe("room")
	if got := numsub(t, b, ch); got != 2 {
		t.Fatalf("NUMSUB = %d with subscribers on A and B, want 2", got)
	}
	b1.unsubscribe("room")
	if got := numsub(t, b, ch); got != 2 {
		t.Fatalf("NUMSUB = %d after one of B's two subscribers left, want 2", got)
	}
	_ = b2.ws.CloseNow() // the last one on B disconnects
	waitFor(t, 5*time.Second, "B to unsubscribe", func() bool { return numsub(t, b, ch) == 1 })
	a1.unsubscribe("room")
	waitFor(t, 5*time.Second, "A to unsubscribe", func() bool { return numsub(t, b, ch) == 0 })
}

func TestHealthAndClose(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	b := newBroker(t, url, uniquePrefix(t))
	if err := b.Start(func(*switchboard.Publication) {}); err != nil {
		t.Fatal(err)
	}
	if err := b.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "Healthy", b.Healthy)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Healthy() {
		t.Fatal("healthy after Close")
	}
	if err := b.Publish(context.Background(), &switchboard.Publication{Kind: switchboard.TargetAll, Message: msg(t, typ, 1)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	_ = b.Close() // idempotent
}

// TestConcurrentPublishes exercises the batching publishers: every publication arrives, and
// each publisher's own publications arrive in order.
func TestConcurrentPublishes(t *testing.T) {
	a, b, _ := threeNodes(t)
	sub := b.dial("")
	sub.subscribe("burst")
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := a.m.Publish(context.Background(), "burst", msg(t, typ, w*1000+i)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last := map[int]int{}
	var got []int
	for i := 0; i < writers*each; i++ {
		n := int(sub.read().field("n").(float64))
		w, k := n/1000, n%1000
		if prev, ok := last[w]; ok && k <= prev {
			t.Fatalf("writer %d: %d after %d", w, k, prev)
		}
		last[w] = k
		got = append(got, n)
	}
	sort.Ints(got)
	if len(got) != writers*each {
		t.Fatalf("%d publications, want %d", len(got), writers*each)
	}
}

// TestRedisRestart kills a private Redis under two running nodes and starts it again: while
// it is down, publishes fail; once it is back, the nodes reconnect and resubscribe (the
// go-redis PubSub does it on the broker's reconnect attempt) and publications flow again,
// without restarting the nodes.
func TestRedisRestart(t *testing.T) {
	leakCheck(t)
	r := startPrivateRedis(t)
	prefix := uniquePrefix(t)
	a, b := startNode(t, r.url(), prefix), startNode(t, r.url(), prefix)
	sub, user := b.dial(""), b.dial("erin")
	sub.subscribe("live")
	subFrames, userFrames := sub.stream(), user.stream()
	ctx := context.Background()
	if err := a.m.Publish(ctx, "live", msg(t, typ, 1)); err != nil {
		t.Fatal(err)
	}
	if f, ok := next(t, subFrames, 5*time.Second); !ok || f.field("n") != 1.0 {
		t.Fatalf("before the restart: got %s (%v)", f.raw, ok)
	}

	r.stop()
	waitFor(t, 5*time.Second, "A to notice", func() bool { return !a.b.Healthy() })
	failStart := time.Now()
	for _, err := range []error{
		a.m.Publish(ctx, "live", msg(t, typ, 2)),
		a.m.BroadcastToUsers(ctx, msg(t, typ, 2), "erin"),
	} {
		if err == nil {
			t.Fatal("Publish succeeded with Redis down")
		}
	}
	t.Logf("two publishes failed in %v with Redis down", time.Since(failStart).Round(time.Millisecond))
	if err := a.b.Health(ctx); err == nil {
		t.Fatal("Health is nil with Redis down")
	}

	restarted := time.Now()
	r.start()
	// Poll until a publication from A reaches B's subscriber: the publish must succeed and
	// B must have resubscribed to the topic's channel.
	for n := 3; ; n++ {
		if time.Since(restarted) > 15*time.Second {
			t.Fatal("publications do not flow 15 s after Redis came back")
		}
		if err := a.m.Publish(ctx, "live", msg(t, typ, n)); err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if f, ok := next(t, subFrames, 100*time.Millisecond); ok {
			if f.Type != typ || f.field("n").(float64) < 3 {
				t.Fatalf("unexpected %s", f.raw)
			}
			break
		}
	}
	t.Logf("publications flow again %v after the restart", time.Since(restarted).Round(time.Millisecond))
	// The node channel was resubscribed too.
	if err := a.m.BroadcastToUsers(ctx, msg(t, typ, 100), "erin"); err != nil {
		t.Fatal(err)
	}
	if f, ok := next(t, userFrames, 5*time.Second); !ok || f.field("n") != 100.0 {
		t.Fatalf("after the restart: user got %s (%v)", f.raw, ok)
	}
	waitFor(t, 10*time.Second, "both brokers healthy", func() bool { return a.b.Healthy() && b.b.Healthy() })
}
