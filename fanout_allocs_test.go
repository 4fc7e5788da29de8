package switchboard

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// TestPublishAllocsIndependentOfSubscribers checks that what a Publish allocates does not
// grow with the number of subscribers: the frame is encoded once and the same bytes are
// queued for each of them. It counts allocations, not time (BenchmarkFanoutAllocs gives
// the figures, docs/benchmarks.md).
func TestPublishAllocsIndependentOfSubscribers(t *testing.T) {
	few := publishAllocs(t, 100)
	many := publishAllocs(t, 10000)
	t.Logf("allocations per Publish: %v with 100 subscribers, %v with 10,000", few, many)
	if many > few+1 {
		t.Errorf("a Publish to 10,000 subscribers allocates %v times, to 100 subscribers %v times: the count grows with the subscribers", many, few)
	}
}

// publishAllocs returns the allocations of one Publish to a topic with subs socket-less
// subscribers (see benchFakeConn), after checking that every subscriber got every
// publication as the same bytes.
func publishAllocs(t *testing.T, subs int) float64 {
	t.Helper()
	const runs = 100
	m := New(Config{SendQueueSize: -1, PingInterval: -1})
	conns := make([]*Conn, subs)
	for i := range conns {
		conns[i] = benchFakeConn(m, fmt.Sprintf("fake-%d", i), runs+1) // room for every frame
		m.reg.addSub("allocs", conns[i])
	}
	t.Cleanup(func() {
		for _, c := range conns {
			m.reg.removeSub("allocs", c)
		}
		if err := m.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	msg, err := NewMessage(TypeData, benchPayload)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	published := 0
	publish := func() {
		published++
		if err := m.Publish(ctx, "allocs", msg); err != nil {
			t.Fatal(err)
		}
	}

	var allocs float64
	if raceEnabled {
		// Under the race detector sync.Pool drops one item put back in four, so the pooled
		// list of subscribers is regrown (about log2(subs) allocations) after one
		// publication in four. Those are the detector's; the fewest of single runs is the
		// steady state, which a per-subscriber allocation would still raise.
		allocs = math.Inf(1)
		for i := 0; i < runs/2; i++ {
			allocs = min(allocs, testing.AllocsPerRun(1, publish))
		}
	} else {
		allocs = testing.AllocsPerRun(runs, publish)
	}

	var frame *byte
	for i, c := range conns {
		c.mu.Lock()
		n := len(c.queue)
		var first *byte
		if n > 0 {
			first = &c.queue[0][0]
		}
		c.mu.Unlock()
		if n != published {
			t.Fatalf("subscriber %d of %d has %d frames queued, want %d", i, subs, n, published)
		}
		if i == 0 {
			frame = first
		} else if first != frame {
			t.Fatalf("subscriber %d of %d got its own copy of the frame: the message was encoded more than once", i, subs)
		}
	}
	return allocs
}
