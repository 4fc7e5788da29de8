package switchboard

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// memPublish publishes n messages to topic through b's history, returning the positions.
func memPublish(t *testing.T, b *MemoryBroker, topic string, n int, rule HistoryRule) []StreamPosition {
	t.Helper()
	var out []StreamPosition
	for i := 0; i < n; i++ {
		msg, err := NewData("tick", map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		pos, err := b.PublishHistory(context.Background(), &Publication{Kind: TargetTopic, Topic: topic, Message: msg}, rule)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pos)
	}
	return out
}

// startedBroker returns an in-memory broker on a test clock that records what it delivers.
func startedBroker(t *testing.T) (*MemoryBroker, *testClock, *[]*Message) {
	t.Helper()
	b, clock := histBroker()
	var got []*Message
	if err := b.Start(func(p *Publication) { got = append(got, p.Message) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, clock, &got
}

func seqs(msgs []*Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func TestMemoryHistoryPositions(t *testing.T) {
	b, _, delivered := startedBroker(t)
	rule := HistoryRule{Pattern: "*", Size: 5, TTL: time.Hour}
	pos := memPublish(t, b, "t", 12, rule)
	epoch := pos[0].Epoch
	for i, p := range pos {
		if p.Seq != uint64(i+1) || p.Epoch != epoch || epoch == "" {
			t.Fatalf("position %d: %+v", i, p)
		}
		if d := (*delivered)[i]; d.Seq != p.Seq || d.Epoch != epoch || d.Topic != "t" {
			t.Fatalf("delivered %d: %+v", i, d)
		}
	}
	other := memPublish(t, b, "u", 1, rule)[0]
	if other.Seq != 1 || other.Epoch == epoch {
		t.Fatalf("another topic's stream: %+v (epoch of t: %s)", other, epoch)
	}

	read := func(since *StreamPosition, limit int) HistoryResult {
		t.Helper()
		r, err := b.History(context.Background(), "t", HistoryQuery{Since: since, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if r.Position != (StreamPosition{12, epoch}) {
			t.Fatalf("position %+v", r.Position)
		}
		return r
	}
	cases := []struct {
		name     string
		since    *StreamPosition
		limit    int
		want     []uint64
		complete bool
	}{
		{"position only", nil, 10, nil, true},
		{"all kept (Size 5)", &StreamPosition{0, epoch}, -1, []uint64{8, 9, 10, 11, 12}, false},
		{"from the oldest kept", &StreamPosition{7, epoch}, -1, []uint64{8, 9, 10, 11, 12}, true},
		{"one trimmed", &StreamPosition{6, epoch}, -1, []uint64{8, 9, 10, 11, 12}, false},
		{"up to date", &StreamPosition{12, epoch}, 10, nil, true},
		{"limit", &StreamPosition{7, epoch}, 2, []uint64{8, 9}, false},
		{"limit exactly", &StreamPosition{10, epoch}, 2, []uint64{11, 12}, true},
		{"limit 0", &StreamPosition{10, epoch}, 0, nil, false},
		{"other epoch", &StreamPosition{10, "other"}, -1, nil, false},
		{"beyond the stream", &StreamPosition{13, epoch}, -1, nil, false},
	}
	for _, tc := range cases {
		r := read(tc.since, tc.limit)
		if fmt.Sprint(seqs(r.Publications)) != fmt.Sprint(tc.want) || r.Complete != tc.complete {
			t.Errorf("%s: publications %v complete %v, want %v %v", tc.name, seqs(r.Publications), r.Complete, tc.want, tc.complete)
		}
	}
	// Results are copies: changing one leaves the history as it was.
	r := read(&StreamPosition{11, epoch}, -1)
	r.Publications[0].Seq = 99
	if again := read(&StreamPosition{11, epoch}, -1); again.Publications[0].Seq != 12 {
		t.Fatalf("history changed through a result: %v", seqs(again.Publications))
	}
}

// TestMemoryHistoryBounded: a stream holds at most Size entries in a buffer of at most Size,
// however many publications it has seen, and always the latest ones, in order.
func TestMemoryHistoryBounded(t *testing.T) {
	b, _, delivered := startedBroker(t)
	for _, size := range []int{1, 5, 16, 100} {
		rule := HistoryRule{Size: size, TTL: time.Hour}
		topic := fmt.Sprintf("size:%d", size)
		for _, n := range []int{1, 3, size - 1, size, size + 1, 7 * size, 13} {
			memPublish(t, b, topic, n, rule)
			*delivered = nil
			st, _, err := b.hist.lockStream(topic, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			held, capacity, seq := st.ring.len(), len(st.ring.buf), st.seq
			var got []uint64
			for i := range held {
				got = append(got, st.ring.at(i).msg.Seq)
			}
			st.mu.Unlock()
			if held != int(min(seq, uint64(size))) || capacity > size {
				t.Fatalf("size %d, %d published: %d entries in a buffer of %d", size, seq, held, capacity)
			}
			for i, s := range got {
				if s != seq-uint64(held)+1+uint64(i) {
					t.Fatalf("size %d, %d published: entries %v", size, seq, got)
				}
			}
		}
	}
}

// TestMemoryHistoryExpiry: publications expire after TTL; a stream idle for TTL restarts in a
// new epoch, on a publication or a read; a read of a new topic starts its epoch.
func TestMemoryHistoryExpiry(t *testing.T) {
	b, clock, _ := startedBroker(t)
	rule := HistoryRule{Size: 100, TTL: time.Minute}
	ctx := context.Background()

	fresh, err := b.History(ctx, "t", HistoryQuery{TTL: time.Minute})
	if err != nil || fresh.Position.Seq != 0 || fresh.Position.Epoch == "" {
		t.Fatalf("read of a new topic: %+v, %v", fresh, err)
	}
	epoch := fresh.Position.Epoch
	memPublish(t, b, "t", 3, rule) // seq 1..3 at 0 s
	if p := memPublish(t, b, "t", 1, rule)[0]; p != (StreamPosition{4, epoch}) {
		t.Fatalf("publication after a read: %+v, want seq 4 in the read's epoch %s", p, epoch)
	}
	clock.advance(40 * time.Second)
	memPublish(t, b, "t", 1, rule) // seq 5 at 40 s
	clock.advance(30 * time.Second)
	r, _ := b.History(ctx, "t", HistoryQuery{Since: &StreamPosition{0, epoch}, Limit: -1})
	if fmt.Sprint(seqs(r.Publications)) != "[5]" || r.Complete || r.Position.Epoch != epoch {
		t.Fatalf("at 70 s: %v complete %v epoch %s; want [5], incomplete, same epoch", seqs(r.Publications), r.Complete, r.Position.Epoch)
	}
	r, _ = b.History(ctx, "t", HistoryQuery{Since: &StreamPosition{4, epoch}, Limit: -1})
	if !r.Complete {
		t.Fatalf("at 70 s from seq 4: incomplete")
	}

	clock.advance(time.Minute) // idle since 40 s: dropped at 100 s
	p := memPublish(t, b, "t", 1, rule)[0]
	if p.Seq != 1 || p.Epoch == epoch {
		t.Fatalf("publication after idling past TTL: %+v, want seq 1 of a new epoch", p)
	}
	clock.advance(2 * time.Minute)
	r, _ = b.History(ctx, "t", HistoryQuery{Since: &StreamPosition{1, p.Epoch}, TTL: time.Minute})
	if r.Complete || r.Position.Seq != 0 || r.Position.Epoch == p.Epoch {
		t.Fatalf("read after idling past TTL: %+v, want a new, empty epoch", r)
	}
}

// TestMemoryHistorySweep: the sweeper removes idle streams and skips busy ones; it stops at
// Close, after which history is refused.
func TestMemoryHistorySweep(t *testing.T) {
	base := runtime.NumGoroutine()
	b, clock := histBroker()
	if err := b.Start(func(*Publication) {}); err != nil {
		t.Fatal(err)
	}
	rule := HistoryRule{Size: 10, TTL: time.Minute}
	for i := 0; i < 50; i++ {
		memPublish(t, b, fmt.Sprintf("topic:%d", i), 2, rule)
	}
	if n := b.hist.streams(); n != 50 {
		t.Fatalf("%d streams, want 50", n)
	}
	clock.advance(30 * time.Second)
	memPublish(t, b, "topic:0", 1, rule) // keeps topic:0 alive
	b.hist.sweep()
	if n := b.hist.streams(); n != 50 {
		t.Fatalf("%d streams after a sweep before TTL, want 50", n)
	}
	clock.advance(40 * time.Second)
	busy, _, err := b.hist.lockStream("topic:1", time.Minute) // expired, but in use
	if err != nil {
		t.Fatal(err)
	}
	b.hist.sweep()
	busy.mu.Unlock()
	if n := b.hist.streams(); n != 2 {
		t.Fatalf("%d streams after the sweep, want 2 (topic:0 alive, topic:1 busy)", n)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, base) // the sweeper has stopped
	msg, _ := NewData("tick", nil)
	if _, err := b.PublishHistory(context.Background(), &Publication{Kind: TargetTopic, Topic: "t", Message: msg}, rule); !errors.Is(err, ErrShutdown) {
		t.Fatalf("PublishHistory after Close: %v", err)
	}
	if _, err := b.History(context.Background(), "t", HistoryQuery{}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("History after Close: %v", err)
	}
	if n := b.hist.streams(); n != 0 {
		t.Fatalf("%d streams after Close", n)
	}
}

// TestMemoryHistorySweeperRuns: the sweeper goroutine removes idle streams by itself.
func TestMemoryHistorySweeperRuns(t *testing.T) {
	b, clock, _ := startedBroker(t)
	memPublish(t, b, "t", 1, HistoryRule{Size: 10, TTL: time.Second})
	clock.advance(2 * time.Second)
	waitFor(t, "the sweeper to drop the idle stream", func() bool { return b.hist.streams() == 0 })
}

func TestMemoryHistoryBadPublication(t *testing.T) {
	b, _, _ := startedBroker(t)
	msg, _ := NewData("tick", nil)
	for _, p := range []*Publication{
		nil,
		{Kind: TargetTopic, Topic: "t"},
		{Kind: TargetAll, Message: msg},
		{Kind: TargetTopic, Message: msg},
	} {
		if _, err := b.PublishHistory(context.Background(), p, HistoryRule{}); !errors.Is(err, ErrBadMessage) {
			t.Errorf("PublishHistory(%+v): %v, want ErrBadMessage", p, err)
		}
	}
}
