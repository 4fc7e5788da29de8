package switchboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// The in-memory broker's topic history. Each topic with history has a stream: an epoch, the
// last Seq given out and the latest publications. A stream has its own lock, under which a
// publication gets its position, is stored and is delivered to the local connections, so
// that local deliveries of a topic happen in Seq order, and a history read sees either all
// of a publication (stored and delivered) or nothing of it.
//
// Lock order: memHistory shard lock → memStream.mu → the manager's locks taken by deliver
// (registry shards, then Conn.mu). A publisher never holds a shard lock while it delivers.

// memStream is one topic's history.
type memStream struct {
	mu      sync.Mutex
	dead    bool // removed from its shard by the sweeper: look the topic up again
	epoch   string
	seq     uint64     // the last Seq given out in this epoch
	touched int64      // when the stream last had a publication, or was started (clock ns)
	ttl     int64      // nanoseconds; the stream is dropped when idle this long
	ents    []memEntry // the kept publications, oldest first, Seqs consecutive
}

type memEntry struct {
	msg     *Message
	expires int64 // clock ns
}

// memHistory holds the streams of a MemoryBroker, sharded by topic like the registry.
type memHistory struct {
	shards [shardCount]memShard
	clock  func() int64 // nanoseconds; tests move it by hand. nil: wall clock

	mu      sync.Mutex // guards the sweeper's life and minTTL
	closed  bool
	running bool
	stop    chan struct{}
	done    chan struct{}
	minTTL  time.Duration // the shortest TTL seen: the sweeper's period follows it
}

type memShard struct {
	mu sync.Mutex
	m  map[string]*memStream
}

func (h *memHistory) now() int64 {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now().UnixNano()
}

// newEpoch returns a random epoch name: 16 hex digits.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on a broken OS source)
	return hex.EncodeToString(b[:])
}

// lockStream returns topic's stream, locked, creating it when missing. A stream idle for
// its TTL is restarted in a new epoch here (lazily), whatever the sweeper has done yet.
func (h *memHistory) lockStream(topic string, ttl time.Duration) (*memStream, error) {
	if ttl <= 0 {
		ttl = defaultHistoryTTL
	}
	s := &h.shards[shardOf(topic)]
	for {
		s.mu.Lock()
		st := s.m[topic]
		if st == nil {
			if err := h.ensureSweeper(ttl); err != nil {
				s.mu.Unlock()
				return nil, err
			}
			if s.m == nil {
				s.m = make(map[string]*memStream)
			}
			st = &memStream{epoch: newEpoch(), touched: h.now(), ttl: int64(ttl)}
			s.m[topic] = st
		}
		s.mu.Unlock()
		st.mu.Lock()
		if st.dead { // swept between the lookup and the lock
			st.mu.Unlock()
			continue
		}
		st.refresh(h.now())
		return st, nil
	}
}

// refresh drops what has expired: the whole stream when it has been idle for its TTL (it
// restarts in a new epoch), else the publications older than their TTL.
func (st *memStream) refresh(now int64) {
	if now-st.touched >= st.ttl {
		clear(st.ents)
		st.ents = st.ents[:0]
		st.epoch = newEpoch()
		st.seq = 0
		st.touched = now
		return
	}
	n := 0
	for n < len(st.ents) && st.ents[n].expires <= now {
		st.ents[n] = memEntry{}
		n++
	}
	st.ents = st.ents[n:]
}

// push stores msg as the newest publication, keeping at most size.
func (st *memStream) push(msg *Message, expires int64, size int) {
	st.ents = append(st.ents, memEntry{msg: msg, expires: expires})
	if drop := len(st.ents) - size; drop > 0 {
		// Re-slicing keeps memory bounded: append reallocates once the capacity left is
		// used up, copying only the kept entries (at most about twice size are allocated).
		clear(st.ents[:drop])
		st.ents = st.ents[drop:]
	}
}

// read answers q from the stream (locked, refreshed).
func (st *memStream) read(q HistoryQuery) HistoryResult {
	res := HistoryResult{Position: StreamPosition{Seq: st.seq, Epoch: st.epoch}}
	if q.Since == nil {
		res.Complete = true
		return res
	}
	since := *q.Since
	if since.Epoch != st.epoch || since.Seq > st.seq {
		return res // another epoch, or a position this epoch never reached
	}
	oldest := st.seq + 1 - uint64(len(st.ents)) // Seq of ents[0]
	from := since.Seq + 1
	res.Complete = from >= oldest
	if from < oldest {
		from = oldest
	}
	avail := st.ents[from-oldest:]
	if q.Limit >= 0 && len(avail) > q.Limit {
		avail = avail[:q.Limit]
		res.Complete = false
	}
	if len(avail) > 0 {
		res.Publications = make([]*Message, len(avail))
		for i, e := range avail {
			cp := *e.msg
			res.Publications[i] = &cp
		}
	}
	return res
}

// ensureSweeper starts the sweeper on the first stream, and shortens its period for a
// shorter TTL. It fails after Close.
func (h *memHistory) ensureSweeper(ttl time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrShutdown
	}
	if h.minTTL == 0 || ttl < h.minTTL {
		h.minTTL = ttl
	}
	if !h.running {
		h.running = true
		h.stop, h.done = make(chan struct{}), make(chan struct{})
		go h.sweeper(h.stop, h.done)
	}
	return nil
}

// sweepPeriod is how often idle streams are removed: the shortest TTL, within 1s..1min. A
// stream thus takes at most about twice its TTL to be freed; until then it is only memory,
// as every access expires it lazily.
func (h *memHistory) sweepPeriod() time.Duration {
	h.mu.Lock()
	d := h.minTTL
	h.mu.Unlock()
	return min(max(d, time.Second), time.Minute)
}

func (h *memHistory) sweeper(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(h.sweepPeriod())
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h.sweep()
		t.Reset(h.sweepPeriod())
	}
}

// sweep removes the streams that have been idle for their TTL. A stream that is busy (its
// lock held) is not idle and is skipped without waiting.
func (h *memHistory) sweep() {
	now := h.now()
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for topic, st := range s.m {
			if !st.mu.TryLock() {
				continue
			}
			if now-st.touched >= st.ttl {
				st.dead = true
				st.ents = nil
				delete(s.m, topic)
			}
			st.mu.Unlock()
		}
		s.mu.Unlock()
	}
}

// streams returns how many streams are held (for tests and stats).
func (h *memHistory) streams() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// close stops the sweeper and drops every stream; later use fails with ErrShutdown until
// reopen.
func (h *memHistory) close() {
	h.mu.Lock()
	h.closed = true
	running, stop, done := h.running, h.stop, h.done
	h.running = false
	h.mu.Unlock()
	if running {
		close(stop)
		<-done
	}
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for _, st := range s.m {
			st.mu.Lock()
			st.dead = true
			st.mu.Unlock()
		}
		s.m = nil
		s.mu.Unlock()
	}
}

// reopen allows use again after close (Broker.Start after Close).
func (h *memHistory) reopen() {
	h.mu.Lock()
	h.closed = false
	h.mu.Unlock()
}

// PublishHistory implements HistoryBroker: it gives p the next position of its topic's
// stream, stores it, and delivers it to the local connections before returning, all under
// the stream's lock, so that a topic's publications reach each connection in Seq order.
// What runs during delivery (Config.Observer, Config.OnError) must therefore not publish
// to the same topic synchronously: it would wait for the lock its own caller holds.
func (b *MemoryBroker) PublishHistory(ctx context.Context, p *Publication, rule HistoryRule) (StreamPosition, error) {
	if p == nil || p.Message == nil || p.Kind != TargetTopic || p.Topic == "" {
		return StreamPosition{}, fmt.Errorf("%w: history needs a topic publication", ErrBadMessage)
	}
	b.mu.RLock()
	deliver := b.deliver
	b.mu.RUnlock()
	if deliver == nil {
		return StreamPosition{}, ErrShutdown
	}
	rule = rule.withDefaults()
	st, err := b.hist.lockStream(p.Topic, rule.TTL)
	if err != nil {
		return StreamPosition{}, err
	}
	defer st.mu.Unlock()
	now := b.hist.now()
	st.seq++
	st.touched = now
	st.ttl = int64(rule.TTL)
	msg := *p.Message
	msg.Topic, msg.Seq, msg.Epoch = p.Topic, st.seq, st.epoch
	st.push(&msg, now+int64(rule.TTL), rule.Size)
	deliver(&Publication{Kind: TargetTopic, Topic: p.Topic, Message: &msg})
	return StreamPosition{Seq: msg.Seq, Epoch: msg.Epoch}, nil
}

// History implements HistoryBroker.
func (b *MemoryBroker) History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error) {
	st, err := b.hist.lockStream(topic, q.TTL)
	if err != nil {
		return HistoryResult{}, err
	}
	defer st.mu.Unlock()
	return st.read(q), nil
}
