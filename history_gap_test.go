package switchboard

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lossyBroker is the in-memory broker behaving like a cluster broker on Pub/Sub: it hands
// publications to the node from a goroutine of its own, one after the other, and drops those
// that drop selects (a Pub/Sub connection that was down), while its history keeps them.
type lossyBroker struct {
	*MemoryBroker
	mu   sync.Mutex
	drop func(*Message) bool
	q    chan *Publication
	done chan struct{}
}

func newLossyBroker(inner *MemoryBroker) *lossyBroker {
	return &lossyBroker{MemoryBroker: inner, q: make(chan *Publication, 1024), done: make(chan struct{})}
}

func (b *lossyBroker) Start(deliver func(*Publication)) error {
	go func() {
		defer close(b.done)
		for p := range b.q {
			b.mu.Lock()
			drop := b.drop
			b.mu.Unlock()
			if drop != nil && drop(p.Message) {
				continue
			}
			deliver(p)
		}
	}()
	return b.MemoryBroker.Start(func(p *Publication) { b.q <- p })
}

func (b *lossyBroker) Close() error {
	err := b.MemoryBroker.Close()
	close(b.q)
	<-b.done
	return err
}

// dropping makes the broker lose the topic publications whose seq is in [from, to].
func (b *lossyBroker) dropping(from, to uint64) {
	b.mu.Lock()
	b.drop = func(m *Message) bool { return m.Seq >= from && m.Seq <= to }
	b.mu.Unlock()
}

// tracked counts the topics whose last delivered position the node keeps.
func (m *Manager) tracked() int {
	n := 0
	for i := range m.reg.topics {
		s := &m.reg.topics[i]
		s.mu.RLock()
		n += len(s.last)
		s.mu.RUnlock()
	}
	return n
}

// gapSubscriber dials ts, subscribes to topic and returns the client and the epoch.
func gapSubscriber(t *testing.T, ts *testServer, topic string) (*client, histPos) {
	t.Helper()
	c := ts.dial()
	bcConnect(t, c)
	r := histSubscribe(t, c, nil, topic)
	return c, r.Positions[topic]
}

// TestGapFilledFromHistory: publications the broker lost on their way to the node reach its
// subscribers from the history, in order, before the one that revealed the gap.
func TestGapFilledFromHistory(t *testing.T) {
	lb := newLossyBroker(NewMemoryBroker())
	ts := startServer(t, Config{Broker: lb, History: chatRules(100, time.Hour)})
	c, pos := gapSubscriber(t, ts, "chat:1")
	d, _ := gapSubscriber(t, ts, "chat:1")
	lb.dropping(2, 3)
	histPublish(t, ts.m, "chat:1", 1, 5) // seq 1..5; 2 and 3 never reach the node live
	histExpect(t, c, "chat:1", pos.Epoch, 1, 1, 5)
	histExpect(t, d, "chat:1", pos.Epoch, 1, 1, 5)
	bcQuiet(t, c, "after the gap")
	if s := ts.m.Stats(); s.GapsFilled != 2 || s.GapsLost != 0 {
		t.Fatalf("GapsFilled %d, GapsLost %d; want 2, 0", s.GapsFilled, s.GapsLost)
	}
}

// TestGapSeededBySubscribe: the position a subscriber was given counts as delivered, so a
// publication lost right after it is filled too.
func TestGapSeededBySubscribe(t *testing.T) {
	lb := newLossyBroker(NewMemoryBroker())
	ts := startServer(t, Config{Broker: lb, History: chatRules(100, time.Hour)})
	histPublish(t, ts.m, "chat:1", 1, 3) // before anyone subscribes: seq 1..3
	c, pos := gapSubscriber(t, ts, "chat:1")
	if pos.Seq != 3 {
		t.Fatalf("position %+v, want seq 3", pos)
	}
	lb.dropping(4, 4)
	histPublish(t, ts.m, "chat:1", 4, 2) // seq 4 (lost), 5
	histExpect(t, c, "chat:1", pos.Epoch, 4, 4, 2)
}

// TestGapNotInHistory: what the history no longer holds (trimmed by Size) cannot be filled:
// the node delivers what is left, in order, counts the loss, and logs it.
func TestGapNotInHistory(t *testing.T) {
	var log logBuffer
	lb := newLossyBroker(NewMemoryBroker())
	ts := startServer(t, Config{Broker: lb, History: chatRules(2, time.Hour), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	c, pos := gapSubscriber(t, ts, "chat:1")
	lb.dropping(2, 5)
	histPublish(t, ts.m, "chat:1", 1, 6) // seq 1..6; 2..5 lost live, 2..4 trimmed
	histExpect(t, c, "chat:1", pos.Epoch, 1, 1, 1)
	histExpect(t, c, "chat:1", pos.Epoch, 5, 5, 2) // 5 from the history, then 6
	bcQuiet(t, c, "after the gap")
	if s := ts.m.Stats(); s.GapsFilled != 1 || s.GapsLost != 3 {
		t.Fatalf("GapsFilled %d, GapsLost %d; want 1, 3", s.GapsFilled, s.GapsLost)
	}
	if !strings.Contains(log.String(), "jump in seq") {
		t.Fatalf("no warning logged:\n%s", log.String())
	}
}

// TestGapOverRecoverLimit: a gap larger than Config.RecoverLimit is not read at all, as a
// client's recovery of it would not be.
func TestGapOverRecoverLimit(t *testing.T) {
	lb := newLossyBroker(NewMemoryBroker())
	ts := startServer(t, Config{Broker: lb, History: chatRules(100, time.Hour), RecoverLimit: 2})
	c, pos := gapSubscriber(t, ts, "chat:1")
	lb.dropping(2, 4)
	histPublish(t, ts.m, "chat:1", 1, 5)
	histExpect(t, c, "chat:1", pos.Epoch, 1, 1, 1)
	histExpect(t, c, "chat:1", pos.Epoch, 5, 5, 1)
	if s := ts.m.Stats(); s.GapsFilled != 0 || s.GapsLost != 3 {
		t.Fatalf("GapsFilled %d, GapsLost %d; want 0, 3", s.GapsFilled, s.GapsLost)
	}
}

// TestGapNewEpoch: after the stream expired and restarted, the first publications of the new
// epoch are filled when lost.
func TestGapNewEpoch(t *testing.T) {
	inner, clock := histBroker()
	lb := newLossyBroker(inner)
	ts := startServer(t, Config{Broker: lb, History: chatRules(100, time.Minute)})
	c, pos := gapSubscriber(t, ts, "chat:1")
	histPublish(t, ts.m, "chat:1", 1, 1)
	histExpect(t, c, "chat:1", pos.Epoch, 1, 1, 1)
	clock.advance(2 * time.Minute) // the stream expires: the next publication starts an epoch
	lb.dropping(1, 2)
	histPublish(t, ts.m, "chat:1", 2, 3) // seq 1, 2 (lost), 3 of the new epoch
	w := c.expect(TypeData)
	epoch := posOf(t, w).Epoch
	if epoch == pos.Epoch || posOf(t, w).Seq != 1 || bcSeq(w, "i") != 2 {
		t.Fatalf("got %s, want seq 1 of a new epoch", w.raw)
	}
	histExpect(t, c, "chat:1", epoch, 2, 3, 2)
}

// TestGapStateBounded: the node keeps a position only for topics with history that have
// local subscribers, and forgets it with the last one; the in-memory broker, which cannot
// leave gaps, keeps none.
func TestGapStateBounded(t *testing.T) {
	lb := newLossyBroker(NewMemoryBroker())
	ts := startServer(t, Config{Broker: lb, History: chatRules(100, time.Hour)})
	histPublish(t, ts.m, "chat:nobody", 1, 3) // no subscriber: nothing kept
	c, pos := gapSubscriber(t, ts, "chat:1")
	d, _ := gapSubscriber(t, ts, "chat:1")
	e := ts.dial()
	bcConnect(t, e)
	e.subscribe("plain") // no history: nothing kept
	histPublish(t, ts.m, "chat:1", 1, 1)
	histExpect(t, c, "chat:1", pos.Epoch, 1, 1, 1)
	histExpect(t, d, "chat:1", pos.Epoch, 1, 1, 1)
	if n := ts.m.tracked(); n != 1 {
		t.Fatalf("%d topics tracked, want 1", n)
	}
	for _, x := range []*client{c, d} {
		if w := x.request(TypeUnsubscribe, map[string]any{"subscriptions": []string{"chat:1"}}, "u"); w.Type != TypeUnsubscribeAck {
			t.Fatalf("UNSUBSCRIBE: %s", w.raw)
		}
	}
	if n := ts.m.tracked(); n != 0 {
		t.Fatalf("%d topics tracked after the last subscriber left, want 0", n)
	}

	mem := startServer(t, Config{History: chatRules(100, time.Hour)})
	f, fpos := gapSubscriber(t, mem, "chat:1")
	histPublish(t, mem.m, "chat:1", 1, 2)
	histExpect(t, f, "chat:1", fpos.Epoch, 1, 1, 2)
	if n := mem.m.tracked(); n != 0 {
		t.Fatalf("the in-memory broker: %d topics tracked, want 0", n)
	}
}

// TestGapHistoryReadFails: when the history cannot be read, the publication is delivered
// anyway (after the gap) and the loss counted.
func TestGapHistoryReadFails(t *testing.T) {
	lb := newLossyBroker(NewMemoryBroker())
	fb := &failingHistory{lossyBroker: lb}
	ts := startServer(t, Config{Broker: fb, History: chatRules(100, time.Hour)})
	c, pos := gapSubscriber(t, ts, "chat:1")
	fb.fail.Store(true)
	lb.dropping(2, 2)
	histPublish(t, ts.m, "chat:1", 1, 3)
	histExpect(t, c, "chat:1", pos.Epoch, 1, 1, 1)
	histExpect(t, c, "chat:1", pos.Epoch, 3, 3, 1)
	if s := ts.m.Stats(); s.GapsLost != 1 {
		t.Fatalf("GapsLost %d, want 1", s.GapsLost)
	}
}

// failingHistory is a lossyBroker whose history reads fail while fail is set.
type failingHistory struct {
	*lossyBroker
	fail atomic.Bool
}

func (b *failingHistory) History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error) {
	if b.fail.Load() {
		return HistoryResult{}, context.DeadlineExceeded
	}
	return b.lossyBroker.History(ctx, topic, q)
}
