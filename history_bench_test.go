package switchboard

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPublishHistory measures what history costs a Publish, with the socket-less
// connections of BenchmarkFanoutAllocs (frames stay queued; the queues are emptied every 64
// publications with the timer stopped):
//
//   - off: a manager without Config.History;
//   - unmatched: history rules are configured, but not for this topic (the cost of matching
//     the rules);
//   - history: the topic has history (position, copy of the message, ring entry, stream
//     lock) in the in-memory broker.
//
// docs/benchmarks.md has the figures.
func BenchmarkPublishHistory(b *testing.B) {
	const drainEvery = 64
	rules := []HistoryRule{{Pattern: "chat:*", Size: 1000, TTL: time.Hour}, {Pattern: "bench*", Size: 1000, TTL: time.Hour}}
	for _, subs := range []int{1, 1000} {
		for _, mode := range []string{"off", "unmatched", "history"} {
			b.Run(fmt.Sprintf("subs=%d/%s", subs, mode), func(b *testing.B) {
				cfg := Config{SendQueueSize: -1, PingInterval: -1}
				topic := "bench"
				switch mode {
				case "unmatched":
					cfg.History = rules
					topic = "plain"
				case "history":
					cfg.History = rules
				}
				m := New(cfg)
				conns := make([]*Conn, subs)
				for i := range conns {
					conns[i] = benchFakeConn(m, fmt.Sprintf("fake-%d", i), drainEvery)
					m.reg.addSub(topic, conns[i])
				}
				defer func() {
					for _, c := range conns {
						m.reg.removeSub(topic, c)
					}
					if err := m.Shutdown(context.Background()); err != nil {
						b.Error(err)
					}
				}()
				msg := benchMessage(b)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i%drainEvery == drainEvery-1 {
						b.StopTimer()
						for _, c := range conns {
							benchDrain(c)
						}
						b.StartTimer()
					}
					if err := m.Publish(ctx, topic, msg); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if got, want := m.Stats().MessagesOut, uint64(b.N*subs); got != want {
					b.Fatalf("%d frames queued, want %d", got, want)
				}
				if mode == "history" {
					r, err := m.History(ctx, topic, nil, 0)
					if err != nil || r.Position.Seq != uint64(b.N) {
						b.Fatalf("history position %+v (%v), want seq %d", r.Position, err, b.N)
					}
				}
			})
		}
	}
}
