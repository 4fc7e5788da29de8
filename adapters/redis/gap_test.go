package redis

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
)

// Node-level gap fill: Redis Pub/Sub drops what is published while a node's Pub/Sub
// connection is down; the node fills the hole from the history when the next publication
// arrives, so its clients still see every seq.

// cutProxy forwards TCP connections to a Redis server. cut closes every connection it
// carries and refuses new ones until restore: the node behind it loses Redis (and misses
// what is published meanwhile) while the others keep it.
type cutProxy struct {
	t      testing.TB
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) url() string { return "redis://" + p.l.Addr().String() + "/0" }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track records a pair of connections, or closes them when the proxy was cut meanwhile.
func (p *cutProxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		_ = a.Close()
		_ = b.Close()
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut drops every connection and refuses new ones.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// restore accepts connections again.
func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *cutProxy) close() {
	_ = p.l.Close()
	p.cut()
	p.wg.Wait()
}

// gapNodes starts node A on a private Redis and node B on the same Redis behind a cutProxy,
// both keeping the history of "news:*" with the given size.
func gapNodes(t *testing.T, size int) (a, b *node, proxy *cutProxy) {
	leakCheck(t)
	r := startPrivateRedis(t)
	proxy = startCutProxy(t, "127.0.0.1:"+strconv.Itoa(r.port))
	prefix := uniquePrefix(t)
	cfg := switchboard.Config{History: []switchboard.HistoryRule{{Pattern: "news:*", Size: size, TTL: time.Minute}}}
	return startNodeWith(t, r.url(), prefix, cfg), startNodeWith(t, proxy.url(), prefix, cfg), proxy
}

// missOnB makes node B lose Redis while publish runs on node A, then waits until B is back
// and subscribed again.
func missOnB(t *testing.T, b *node, proxy *cutProxy, publish func()) {
	t.Helper()
	proxy.cut()
	waitFor(t, 10*time.Second, "node B to notice it lost Redis", func() bool { return !b.b.Healthy() })
	publish()
	proxy.restore()
	waitFor(t, 20*time.Second, "node B's pub/sub to be back", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return b.b.Health(ctx) == nil && b.b.Healthy()
	})
}

// expectFrames reads publications of topic with n = seq from frames, for each seq of want,
// in order.
func expectFrames(t *testing.T, frames <-chan frame, topic, epoch string, want ...uint64) {
	t.Helper()
	for _, s := range want {
		f, ok := next(t, frames, 10*time.Second)
		if !ok {
			t.Fatalf("no publication seq %d of %s", s, topic)
		}
		p := position(t, f)
		if f.Topic != topic || p.Seq != s || p.Epoch != epoch || f.field("n") != float64(s) {
			t.Fatalf("got %s, want %s seq %d (n=%d) of epoch %s", f.raw, topic, s, s, epoch)
		}
	}
}

// nothingMore checks that no frame arrives for a moment.
func nothingMore(t *testing.T, frames <-chan frame) {
	t.Helper()
	if f, ok := next(t, frames, 300*time.Millisecond); ok {
		t.Fatalf("unexpected %s", f.raw)
	}
}

// TestGapFilledAcrossNodes: node B misses publications of node A while its Pub/Sub
// connection is down; with A's next publication, B's client gets the missed ones from the
// history, then the new one: every seq, in order, once.
func TestGapFilledAcrossNodes(t *testing.T) {
	a, b, proxy := gapNodes(t, 100)
	cl := b.dial("")
	epoch := cl.subscribeRecover("news:1", nil).Positions["news:1"].Epoch
	frames := cl.stream()
	publishN(t, a, "news:1", 1, 1)
	expectFrames(t, frames, "news:1", epoch, 1)

	missOnB(t, b, proxy, func() { publishN(t, a, "news:1", 2, 4) })
	nothingMore(t, frames) // nothing reached B while it was away
	publishN(t, a, "news:1", 5, 5)
	expectFrames(t, frames, "news:1", epoch, 2, 3, 4, 5)
	publishN(t, a, "news:1", 6, 6)
	expectFrames(t, frames, "news:1", epoch, 6)
	nothingMore(t, frames)
	if st := b.m.Stats(); st.GapsFilled != 3 || st.GapsLost != 0 {
		t.Fatalf("node B: GapsFilled %d, GapsLost %d; want 3, 0", st.GapsFilled, st.GapsLost)
	}
	if st := a.m.Stats(); st.GapsFilled != 0 || st.GapsLost != 0 {
		t.Fatalf("node A: GapsFilled %d, GapsLost %d; want none", st.GapsFilled, st.GapsLost)
	}
}

// TestGapTrimmedAcrossNodes: when the history no longer holds all that node B missed, B's
// client gets what is left, in order, and the jump is counted; subscribing again from its
// last position, the client is told that recovery failed, and where the stream is.
func TestGapTrimmedAcrossNodes(t *testing.T) {
	a, b, proxy := gapNodes(t, 2)
	cl := b.dial("")
	epoch := cl.subscribeRecover("news:1", nil).Positions["news:1"].Epoch
	publishN(t, a, "news:1", 1, 1)
	cl.expectSeqs(t, "news:1", epoch, 1)

	missOnB(t, b, proxy, func() { publishN(t, a, "news:1", 2, 4) }) // the history keeps 3, 4
	publishN(t, a, "news:1", 5, 5)                                  // and then 4, 5
	cl.expectSeqs(t, "news:1", epoch, 4, 5)
	if st := b.m.Stats(); st.GapsFilled != 1 || st.GapsLost != 2 {
		t.Fatalf("node B: GapsFilled %d, GapsLost %d; want 1, 2", st.GapsFilled, st.GapsLost)
	}
	cl.unsubscribe("news:1")
	s := cl.subscribeRecover("news:1", &switchboard.StreamPosition{Seq: 1, Epoch: epoch})
	if s.Recovered["news:1"] || s.Positions["news:1"] != (switchboard.StreamPosition{Seq: 5, Epoch: epoch}) {
		t.Fatalf("SUBSCRIBE_SUCCESS %+v: want recovered false at seq 5", s)
	}
}
