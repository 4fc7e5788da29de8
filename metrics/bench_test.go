package metrics_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/metrics"
)

func newBenchMetrics(tb testing.TB) *metrics.Metrics {
	tb.Helper()
	obs, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	return obs
}

// TestHotPathsDoNotAllocate checks what the BenchmarkObserver* benchmarks show: the
// Observer methods on the manager's hot paths allocate nothing.
func TestHotPathsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	obs := newBenchMetrics(t)
	for name, f := range map[string]func(){
		"MessageIn":        func() { obs.MessageIn(switchboard.TypePing, 64) },
		"MessageIn other":  func() { obs.MessageIn("SOMETHING_ELSE", 64) },
		"MessagesOut":      func() { obs.MessagesOut(switchboard.TypeEvent, 1000, 150000) },
		"Fanout":           func() { obs.Fanout(switchboard.TargetTopic, 1000, 120*time.Microsecond) },
		"ConnectionOpened": func() { obs.ConnectionOpened("json") },
		"ConnectionClosed": func() { obs.ConnectionClosed(1001) },
		"RateLimited":      func() { obs.RateLimited() },
		"SlowConsumer":     func() { obs.SlowConsumer("queue_overflow") },
		"AuthFailure":      func() { obs.AuthFailure("expired") },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

func BenchmarkObserverMessageIn(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.MessageIn(switchboard.TypeSubscribe, 64)
	}
}

// BenchmarkObserverMessageInOther is a type outside the known set: a map miss.
func BenchmarkObserverMessageInOther(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.MessageIn("NOT_A_KNOWN_TYPE", 64)
	}
}

// BenchmarkObserverMessageInParallel has every P count into the same series, as busy
// connections do: the cost of contention on the counters' cache lines.
func BenchmarkObserverMessageInParallel(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obs.MessageIn(switchboard.TypePing, 64)
		}
	})
}

func BenchmarkObserverMessagesOut(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.MessagesOut(switchboard.TypeEvent, 1000, 150000)
	}
}

func BenchmarkObserverFanout(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.Fanout(switchboard.TargetTopic, 1000, 120*time.Microsecond)
	}
}

func BenchmarkObserverConnectionClosed(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.ConnectionClosed(1001)
	}
}

// BenchmarkObserverRare covers the methods called once per connection or per incident.
func BenchmarkObserverRare(b *testing.B) {
	obs := newBenchMetrics(b)
	for _, bc := range []struct {
		name string
		f    func()
	}{
		{"ConnectionOpened", func() { obs.ConnectionOpened("json") }},
		{"HandshakeRejected", func() { obs.HandshakeRejected("rate_limited") }},
		{"SlowConsumer", func() { obs.SlowConsumer("queue_overflow") }},
		{"RateLimited", func() { obs.RateLimited() }},
		{"AuthFailure", func() { obs.AuthFailure("expired") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.f()
			}
		})
	}
}

// BenchmarkObserverPublication is what one publication to n recipients costs the
// observer: MessagesOut and Fanout.
func BenchmarkObserverPublication(b *testing.B) {
	obs := newBenchMetrics(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.MessagesOut(switchboard.TypeEvent, 1000, 150000)
		obs.Fanout(switchboard.TargetTopic, 1000, 120*time.Microsecond)
	}
}

// fanoutSubscribers is the audience of the fan-out benchmarks.
const fanoutSubscribers = 1000

func BenchmarkFanoutWithMetrics(b *testing.B)    { benchFanout(b, true) }
func BenchmarkFanoutWithoutMetrics(b *testing.B) { benchFanout(b, false) }

// benchFanout publishes to a topic with fanoutSubscribers WebSocket subscribers on
// loopback, each reading in its own goroutine, with up to 32 publications in flight. ns/op
// is one publication until every subscriber has read it; fanout-ns/op is the manager's own
// fan-out time (queueing the frame to every subscriber, from Stats.FanoutTime), where the
// Observer is called.
func benchFanout(b *testing.B, withMetrics bool) {
	r := newFanoutRig(b, withMetrics)
	const window = 32 // publications in flight at most
	before := r.m.Stats()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r.waitReceived(n - window)
		r.publish()
		n++
	}
	r.waitReceived(n)
	b.StopTimer()
	after := r.m.Stats()
	b.ReportMetric(float64(after.FanoutTime-before.FanoutTime)/float64(after.Deliveries-before.Deliveries), "fanout-ns/op")
	if after.SlowConsumers != 0 {
		b.Fatalf("%d slow consumers", after.SlowConsumers)
	}
}

// BenchmarkFanoutPaired compares the two on the same machine at the same moments: two
// managers of fanoutSubscribers subscribers each, one with metrics and one without, take
// turns, one publication at a time, each read by every subscriber before the next. Load
// from other programs then weighs on both alike. It reports each one's time per
// publication (until every subscriber has read it) and fan-out time, and their ratios.
func BenchmarkFanoutPaired(b *testing.B) {
	with, without := newFanoutRig(b, true), newFanoutRig(b, false)
	var tWith, tWithout time.Duration
	bw, bwo := with.m.Stats(), without.m.Stats()
	n := 0
	for b.Loop() {
		for _, r := range []*fanoutRig{with, without} {
			start := time.Now()
			r.publish()
			r.waitReceived(n + 1)
			if r == with {
				tWith += time.Since(start)
			} else {
				tWithout += time.Since(start)
			}
		}
		n++
	}
	aw, awo := with.m.Stats(), without.m.Stats()
	fw := float64(aw.FanoutTime-bw.FanoutTime) / float64(n)
	fwo := float64(awo.FanoutTime-bwo.FanoutTime) / float64(n)
	b.ReportMetric(float64(tWith)/float64(n), "with-ns/pub")
	b.ReportMetric(float64(tWithout)/float64(n), "without-ns/pub")
	b.ReportMetric(float64(tWith)/float64(tWithout), "pub-ratio")
	b.ReportMetric(fw, "with-fanout-ns")
	b.ReportMetric(fwo, "without-fanout-ns")
	b.ReportMetric(fw/fwo, "fanout-ratio")
}

// fanoutRig is a manager with fanoutSubscribers WebSocket subscribers to one topic.
type fanoutRig struct {
	tb       testing.TB
	m        *switchboard.Manager
	ev       *switchboard.Message
	ctx      context.Context
	received atomic.Int64 // EVENTs read, by all subscribers together
}

func newFanoutRig(b *testing.B, withMetrics bool) *fanoutRig {
	b.Helper()
	cfg := switchboard.Config{
		Logger:        discardLogger,
		PingInterval:  -1,
		ConnRatePerIP: -1, // every subscriber dials from 127.0.0.1
		SendQueueSize: -1, // the publishers bound the backlog
		WriteTimeout:  -1,
	}
	var f *fixture
	if withMetrics {
		f = newFixture(b, cfg)
	} else {
		m := switchboard.New(cfg)
		f = &fixture{m: m, ts: serve(b, m)}
	}
	r := &fanoutRig{tb: b, m: f.m}
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, 0, fanoutSubscribers)
	b.Cleanup(func() { // before the fixture's: registered after it
		cancel()
		for _, ws := range conns {
			_ = ws.CloseNow()
		}
		wg.Wait()
	})
	sub, err := json.Marshal(map[string]any{"type": "SUBSCRIBE", "payload": map[string]any{"subscriptions": []string{"bench"}}})
	if err != nil {
		b.Fatal(err)
	}
	for range fanoutSubscribers {
		dctx, dcancel := context.WithTimeout(ctx, waitLimit)
		ws, _, err := websocket.Dial(dctx, f.wsURL(), nil)
		if err == nil {
			err = ws.Write(dctx, websocket.MessageText, sub)
		}
		if err == nil {
			_, _, err = ws.Read(dctx) // SUBSCRIBE_SUCCESS
		}
		dcancel()
		if err != nil {
			b.Fatalf("subscriber: %v", err)
		}
		conns = append(conns, ws)
		wg.Go(func() {
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				r.received.Add(1)
			}
		})
	}
	r.ev, err = switchboard.NewEvent("tick", map[string]any{"n": 42, "text": "a typical small event payload"})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *fanoutRig) publish() {
	if err := r.m.Publish(r.ctx, "bench", r.ev); err != nil {
		r.tb.Fatal(err)
	}
}

// waitReceived waits until every subscriber has read n publications.
func (r *fanoutRig) waitReceived(n int) {
	for r.received.Load() < int64(fanoutSubscribers*n) {
		time.Sleep(20 * time.Microsecond)
	}
}
