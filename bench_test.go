package switchboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks of this file, and what they measure (docs/benchmarks.md has figures):
//
//   - BenchmarkBroadcast: end-to-end fan-out over real loopback WebSocket connections. Each
//     iteration publishes one message to a topic with N subscribers and waits until every
//     subscriber has read it. Clients and server share the machine, so the figure is a floor
//     for what the server alone can do; allocs/op counts the clients' allocations too.
//   - BenchmarkFanoutAllocs: the manager-side cost of one Publish (or Broadcast) to N
//     recipients, without sockets: the recipients are connections whose writer is marked
//     busy, so frames stay in their queues and no goroutine runs. allocs/op is exactly what
//     the publishing goroutine allocates.
//   - BenchmarkPublishManyTopics: Publish from parallel goroutines, to one topic or to many
//     topics with one subscriber each (same fake connections): with many topics the
//     registry's sharded locks let publishers run side by side.
//
// Encoding itself is measured by BenchmarkEncode and BenchmarkEncodeStdlib in codec_test.go.

// benchPayload is a 128-byte JSON object.
var benchPayload = func() json.RawMessage {
	head, tail := `{"resource":"tick","data":{"pad":"`, `"}}`
	return json.RawMessage(head + strings.Repeat("x", 128-len(head)-len(tail)) + tail)
}()

func benchMessage(b *testing.B) *Message {
	b.Helper()
	msg, err := NewMessage(TypeData, benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	if len(msg.Payload) != 128 {
		b.Fatalf("payload is %d bytes", len(msg.Payload))
	}
	return msg
}

// benchFDLimit returns the soft limit on open files (Go raises it to the hard limit at start).
func benchFDLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}

// benchSubscribers dials n clients in parallel and subscribes each to topic.
func benchSubscribers(b *testing.B, ts *testServer, n int, topic string) []*client {
	b.Helper()
	clients := make([]*client, n)
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, _, err := ts.tryDial()
				if err == nil {
					err = lcRequest(c, fmt.Sprintf(`{"type":"SUBSCRIBE","id":"s","payload":{"subscriptions":[%q]}}`, topic), TypeSubscribeSuccess)
				}
				if err != nil {
					errs <- fmt.Errorf("subscriber %d: %w", i, err)
					continue
				}
				clients[i] = c
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if st := ts.m.Stats(); st.Subscriptions != n {
		b.Fatalf("%d subscriptions, want %d", st.Subscriptions, n)
	}
	return clients
}

func BenchmarkBroadcast(b *testing.B) {
	for _, subs := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			// Each subscriber is two sockets in this process (client and server end).
			if need, have := uint64(2*subs+1000), benchFDLimit(); have < need {
				b.Skipf("needs %d open files (2 per subscriber, plus slack); the limit here is %d (ulimit -n)", need, have)
			}
			ts := startServer(b, Config{
				ConnRatePerIP:   -1,
				MaxConnsPerUser: -1,
				PingInterval:    -1, // no keepalive PINGs among the counted frames
			})
			clients := benchSubscribers(b, ts, subs, "bench")

			var received, want atomic.Int64
			done := make(chan struct{}, 1)
			for _, c := range clients {
				go func() {
					for {
						_, r, err := c.ws.Reader(context.Background())
						if err != nil {
							return
						}
						if _, err := io.Copy(io.Discard, r); err != nil {
							return
						}
						if received.Add(1) == want.Load() {
							done <- struct{}{}
						}
					}
				}()
			}

			msg := benchMessage(b)
			ctx := context.Background()
			watchdog := time.NewTimer(time.Hour)
			defer watchdog.Stop()
			iters := 0
			b.ReportAllocs()
			for b.Loop() {
				iters++
				want.Store(int64(iters * subs))
				if err := ts.m.Publish(ctx, "bench", msg); err != nil {
					b.Fatal(err)
				}
				watchdog.Reset(60 * time.Second)
				select {
				case <-done:
				case <-watchdog.C:
					b.Fatalf("iteration %d: %d of %d deliveries after 60 s", iters, received.Load(), want.Load())
				}
			}
			b.ReportMetric(float64(iters*subs)/b.Elapsed().Seconds(), "msgs/s")
			if st := ts.m.Stats(); st.SlowConsumers != 0 {
				b.Fatalf("%d slow consumers", st.SlowConsumers)
			}
		})
	}
}

// benchFakeConn is a registered connection without a socket: its writer is marked busy, so
// enqueued frames stay in its queue and no writer goroutine starts.
func benchFakeConn(m *Manager, id string, queueCap int) *Conn {
	c := &Conn{id: id, m: m, ep: m.def, queue: make([][]byte, 0, queueCap)}
	c.state.v.Store(int32(StateConnected))
	c.writing = true
	return c
}

// benchDrain empties the queue of a fake connection, keeping its capacity.
func benchDrain(c *Conn) int {
	c.mu.Lock()
	n := len(c.queue)
	clear(c.queue)
	c.queue = c.queue[:0]
	c.mu.Unlock()
	return n
}

func BenchmarkFanoutAllocs(b *testing.B) {
	const drainEvery = 64
	for _, kind := range []string{"publish", "broadcast"} {
		for _, subs := range []int{1, 100, 1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/subs=%d", kind, subs), func(b *testing.B) {
				m := New(Config{SendQueueSize: -1, PingInterval: -1})
				conns := make([]*Conn, subs)
				for i := range conns {
					c := benchFakeConn(m, fmt.Sprintf("fake-%d", i), drainEvery)
					if kind == "publish" {
						m.reg.addSub("bench", c)
					} else {
						m.reg.addConn(c)
					}
					conns[i] = c
				}
				defer func() {
					for _, c := range conns {
						m.reg.removeSub("bench", c)
						m.reg.removeConn(c)
					}
					if err := m.Shutdown(context.Background()); err != nil {
						b.Error(err)
					}
				}()
				msg := benchMessage(b)
				ctx := context.Background()
				publish := func() error { return m.Publish(ctx, "bench", msg) }
				if kind == "broadcast" {
					publish = func() error { return m.Broadcast(ctx, msg) }
				}

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
					if err := publish(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if got, want := m.Stats().MessagesOut, uint64(b.N*subs); got != want {
					b.Fatalf("%d frames queued, want %d", got, want)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/recipient")
			})
		}
	}
}

func BenchmarkPublishManyTopics(b *testing.B) {
	const drainAt = 256
	for _, topics := range []int{1, 1024} {
		b.Run(fmt.Sprintf("topics=%d", topics), func(b *testing.B) {
			m := New(Config{SendQueueSize: -1, PingInterval: -1})
			names := make([]string, topics)
			conns := make([]*Conn, topics)
			for i := range conns {
				names[i] = fmt.Sprintf("room:%d", i)
				conns[i] = benchFakeConn(m, fmt.Sprintf("fake-%d", i), drainAt)
				m.reg.addSub(names[i], conns[i])
			}
			defer func() {
				for i, c := range conns {
					m.reg.removeSub(names[i], c)
				}
				if err := m.Shutdown(context.Background()); err != nil {
					b.Error(err)
				}
			}()
			msg := benchMessage(b)
			ctx := context.Background()
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				k := int(seed.Add(1) * 7919)
				for pb.Next() {
					k++
					i := k % topics
					if err := m.Publish(ctx, names[i], msg); err != nil {
						b.Error(err)
						return
					}
					// Empty the queue now and then (under its lock, as the writer would).
					c := conns[i]
					c.mu.Lock()
					if len(c.queue) >= drainAt {
						clear(c.queue)
						c.queue = c.queue[:0]
					}
					c.mu.Unlock()
				}
			})
			b.StopTimer()
			if got := m.Stats().MessagesOut; got != uint64(b.N) {
				b.Fatalf("%d frames queued, want %d", got, b.N)
			}
		})
	}
}
