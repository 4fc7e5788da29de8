package redis

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// End-to-end recovery through the Manager: clients on WebSocket connections to nodes that
// share a Redis, reconnecting to another node than the one they left.

// historyNodes starts three nodes that keep the history of "news:*" under rule.
func historyNodes(t *testing.T, size int) (a, b, c *node) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	prefix := uniquePrefix(t)
	cfg := switchboard.Config{History: []switchboard.HistoryRule{{Pattern: "news:*", Size: size, TTL: time.Minute}}}
	return startNodeWith(t, url, prefix, cfg), startNodeWith(t, url, prefix, cfg), startNodeWith(t, url, prefix, cfg)
}

// position reads a frame's seq and epoch.
func position(t *testing.T, f frame) switchboard.StreamPosition {
	t.Helper()
	var p switchboard.StreamPosition
	if err := json.Unmarshal(f.raw, &p); err != nil {
		t.Fatalf("%s: %v", f.raw, err)
	}
	return p
}

// subscribeSuccess is the payload of a SUBSCRIBE_SUCCESS with history.
type subscribeSuccess struct {
	Subscriptions []string                              `json:"subscriptions"`
	Recovered     map[string]bool                       `json:"recovered"`
	Positions     map[string]switchboard.StreamPosition `json:"positions"`
}

// subscribeRecover sends SUBSCRIBE for topic, recovering from since when it is not nil,
// and returns the SUBSCRIBE_SUCCESS payload.
func (c *client) subscribeRecover(topic string, since *switchboard.StreamPosition) subscribeSuccess {
	c.t.Helper()
	payload := map[string]any{"subscriptions": []string{topic}}
	if since != nil {
		payload["recover"] = map[string]any{topic: since}
	}
	f := c.request(switchboard.TypeSubscribe, payload, "sub-"+topic)
	if f.Type != switchboard.TypeSubscribeSuccess {
		c.t.Fatalf("SUBSCRIBE %s: %s", topic, f.raw)
	}
	var s subscribeSuccess
	if err := json.Unmarshal(f.Payload, &s); err != nil {
		c.t.Fatalf("SUBSCRIBE_SUCCESS %s: %v", f.raw, err)
	}
	return s
}

// expectSeqs reads publications of topic with payload n = seq, for each seq of want, in
// order.
func (c *client) expectSeqs(t *testing.T, topic, epoch string, want ...uint64) {
	t.Helper()
	for _, s := range want {
		f := c.read()
		p := position(t, f)
		if f.Topic != topic || p.Seq != s || p.Epoch != epoch || f.field("n") != float64(s) {
			t.Fatalf("got %s, want %s seq %d (n=%d) of epoch %s", f.raw, topic, s, s, epoch)
		}
	}
}

func publishN(t *testing.T, n *node, topic string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := n.m.Publish(context.Background(), topic, msg(t, typ, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecoveryOnAnotherNode: a client on A disconnects, B publishes ten messages, the client
// reconnects to C with its position and gets exactly those ten, in order, then live ones.
func TestRecoveryOnAnotherNode(t *testing.T) {
	a, b, c := historyNodes(t, 100)
	onA := a.dial("")
	first := onA.subscribeRecover("news:1", nil)
	start, ok := first.Positions["news:1"]
	if !ok || start.Seq != 0 || start.Epoch == "" || first.Recovered != nil {
		t.Fatalf("first SUBSCRIBE_SUCCESS: %+v", first)
	}
	publishN(t, b, "news:1", 1, 2)
	onA.expectSeqs(t, "news:1", start.Epoch, 1, 2)
	_ = onA.ws.CloseNow()

	publishN(t, b, "news:1", 3, 12)
	onC := c.dial("")
	got := onC.subscribeRecover("news:1", &switchboard.StreamPosition{Seq: 2, Epoch: start.Epoch})
	if !got.Recovered["news:1"] || got.Positions["news:1"] != (switchboard.StreamPosition{Seq: 12, Epoch: start.Epoch}) {
		t.Fatalf("recovery: %+v", got)
	}
	onC.expectSeqs(t, "news:1", start.Epoch, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	publishN(t, a, "news:1", 13, 13)
	onC.expectSeqs(t, "news:1", start.Epoch, 13)
	onC.quiet(300 * time.Millisecond)

	// Recovering from the latest position sends nothing but the reply.
	onB := b.dial("")
	if got := onB.subscribeRecover("news:1", &switchboard.StreamPosition{Seq: 13, Epoch: start.Epoch}); !got.Recovered["news:1"] {
		t.Fatalf("recovery from the latest: %+v", got)
	}
	onB.quiet(300 * time.Millisecond)
}

// TestRecoveryLostOnAnotherNode: trimmed history and a new epoch are reported as
// recovered: false with nothing replayed, and live publications continue from the
// position given.
func TestRecoveryLostOnAnotherNode(t *testing.T) {
	a, b, c := historyNodes(t, 3)
	onA := a.dial("")
	e := onA.subscribeRecover("news:2", nil).Positions["news:2"].Epoch
	publishN(t, b, "news:2", 1, 1)
	onA.expectSeqs(t, "news:2", e, 1)
	_ = onA.ws.CloseNow()

	publishN(t, b, "news:2", 2, 6) // five missed, three kept
	onC := c.dial("")
	got := onC.subscribeRecover("news:2", &switchboard.StreamPosition{Seq: 1, Epoch: e})
	if got.Recovered["news:2"] || got.Positions["news:2"] != (switchboard.StreamPosition{Seq: 6, Epoch: e}) {
		t.Fatalf("trimmed: %+v", got)
	}
	publishN(t, a, "news:2", 7, 7)
	onC.expectSeqs(t, "news:2", e, 7)

	// The topic's meta goes (expired or deleted): its next publication starts a new epoch.
	if err := rawClient(t, b.b.opts.URL).Del(context.Background(), b.b.HistoryMeta("news:2")).Err(); err != nil {
		t.Fatal(err)
	}
	_ = onC.ws.CloseNow()
	publishN(t, b, "news:2", 1, 2)
	onA2 := a.dial("")
	got = onA2.subscribeRecover("news:2", &switchboard.StreamPosition{Seq: 7, Epoch: e})
	p := got.Positions["news:2"]
	if got.Recovered["news:2"] || p.Epoch == e || p.Seq != 2 {
		t.Fatalf("new epoch: %+v", got)
	}
	onA2.quiet(300 * time.Millisecond)
}

// TestRecoveryWhilePublishing recovers on C while B keeps publishing: the client gets every
// publication after its position exactly once, in order, across the recovered and the live
// ones.
func TestRecoveryWhilePublishing(t *testing.T) {
	a, b, c := historyNodes(t, 1000)
	onA := a.dial("")
	e := onA.subscribeRecover("news:3", nil).Positions["news:3"].Epoch
	publishN(t, b, "news:3", 1, 1)
	onA.expectSeqs(t, "news:3", e, 1)
	_ = onA.ws.CloseNow()
	publishN(t, b, "news:3", 2, 20)

	var published atomic.Int64
	published.Store(20)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // B publishes n = seq, one after the other, until told to stop
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := int(published.Load()) + 1
			if err := b.m.Publish(context.Background(), "news:3", msg(t, typ, n)); err != nil {
				t.Error(err)
				return
			}
			published.Store(int64(n))
		}
	}()
	onC := c.dial("")
	got := onC.subscribeRecover("news:3", &switchboard.StreamPosition{Seq: 1, Epoch: e})
	if !got.Recovered["news:3"] {
		close(stop)
		wg.Wait()
		t.Fatalf("recovery: %+v", got)
	}
	// Let the publisher run past the recovery, then stop it.
	waitFor(t, 10*time.Second, "publications after the recovery", func() bool {
		return published.Load() > int64(got.Positions["news:3"].Seq)+20
	})
	close(stop)
	wg.Wait()
	last := uint64(published.Load())
	for s := uint64(2); s <= last; s++ {
		onC.expectSeqs(t, "news:3", e, s)
	}
	onC.quiet(300 * time.Millisecond)
	t.Logf("recovered %d, then %d live", got.Positions["news:3"].Seq-1, last-got.Positions["news:3"].Seq)
}
