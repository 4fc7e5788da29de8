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
	seq     uint64 // the last Seq given out in this epoch
	touched int64  // when the stream last had a publication, or was started (clock ns)
	ttl     int64  // nanoseconds; the stream is dropped when idle this long
	ring    ring   // the kept publications, oldest first, Seqs consecutive up to seq
}

type memEntry struct {
	msg     *Message
	expires int64 // clock ns
}

// ring is a FIFO of entries in a circular buffer that grows up to the stream's Size and then
// is overwritten in place: a busy topic's history allocates nothing once full.
type ring struct {
	buf  []memEntry
	head int // index of the oldest entry
	n    int // entries held
}

func (r *ring) len() int { return r.n }

// at returns the i-th oldest entry.
func (r *ring) at(i int) *memEntry { return &r.buf[(r.head+i)%len(r.buf)] }

// popOldest forgets the oldest entry.
func (r *ring) popOldest() {
	r.buf[r.head] = memEntry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// push appends e, dropping the oldest entries beyond size.
func (r *ring) push(e memEntry, size int) {
	for r.n >= size && r.n > 0 {
		r.popOldest()
	}
	if r.n == len(r.buf) { // full, below size: grow (doubling, up to size), oldest first
		buf := make([]memEntry, min(max(2*len(r.buf), 8), size))
		for i := 0; i < r.n; i++ {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

// reset forgets every entry, keeping the buffer.
func (r *ring) reset() {
	clear(r.buf)
	r.head, r.n = 0, 0
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

// lockStream returns topic's stream, locked, creating it when missing, and the time. A
// stream idle for its TTL is restarted in a new epoch here (lazily), whatever the sweeper has
// done yet.
func (h *memHistory) lockStream(topic string, ttl time.Duration) (*memStream, int64, error) {
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
				return nil, 0, err
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
		now := h.now()
		st.refresh(now)
		return st, now, nil
	}
}

// refresh drops what has expired: the whole stream when it has been idle for its TTL (it
// restarts in a new epoch), else the publications older than their TTL.
func (st *memStream) refresh(now int64) {
	if now-st.touched >= st.ttl {
		st.ring.reset()
		st.epoch = newEpoch()
		st.seq = 0
		st.touched = now
		return
	}
	for st.ring.len() > 0 && st.ring.at(0).expires <= now {
		st.ring.popOldest()
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
	oldest := st.seq + 1 - uint64(st.ring.len()) // Seq of the oldest entry
	from := since.Seq + 1
	res.Complete = from >= oldest
	if from < oldest {
		from = oldest
	}
	first := int(from - oldest)
	count := st.ring.len() - first
	if q.Limit >= 0 && count > q.Limit {
		count = q.Limit
		res.Complete = false
	}
	if count > 0 {
		res.Publications = make([]*Message, count)
		for i := range count {
			cp := *st.ring.at(first + i).msg
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
				st.ring = ring{}
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
	st, now, err := b.hist.lockStream(p.Topic, rule.TTL)
	if err != nil {
		return StreamPosition{}, err
	}
	defer st.mu.Unlock()
	st.seq++
	st.touched = now
	st.ttl = int64(rule.TTL)
	msg := *p.Message
	msg.Topic, msg.Seq, msg.Epoch = p.Topic, st.seq, st.epoch
	st.ring.push(memEntry{msg: &msg, expires: now + int64(rule.TTL)}, rule.Size)
	deliver(&Publication{Kind: TargetTopic, Topic: p.Topic, Message: &msg})
	return StreamPosition{Seq: msg.Seq, Epoch: msg.Epoch}, nil
}

// History implements HistoryBroker.
func (b *MemoryBroker) History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error) {
	st, _, err := b.hist.lockStream(topic, q.TTL)
	if err != nil {
		return HistoryResult{}, err
	}
	defer st.mu.Unlock()
	return st.read(q), nil
}
