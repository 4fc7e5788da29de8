package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// BenchmarkCrossNodePublish publishes on node A to a topic whose one subscriber, a WebSocket
// client, is on node B, through the Redis at REDIS_URL. "window=1" sends one publication at
// a time (latency of one hop A → Redis → B → client); "window=64" keeps up to 64 in flight
// from 4 publishing goroutines (throughput, with batching). It reports msgs/s and the
// publish-to-client-read latency percentiles.
func BenchmarkCrossNodePublish(b *testing.B) {
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchCrossNode(b, window) })
	}
}

func benchCrossNode(b *testing.B, window int) {
	url := testenv.RedisURL(b)
	prefix := uniquePrefix(b)
	a, bn := startNode(b, url, prefix), startNode(b, url, prefix)
	sub := bn.dial("")
	sub.subscribe("bench")
	frames := sub.stream()
	slots := make(chan struct{}, window)
	lat := make([]time.Duration, 0, b.N)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			f, ok := <-frames
			if !ok {
				done <- fmt.Errorf("connection closed after %d frames", i)
				return
			}
			var p struct{ T int64 }
			_ = json.Unmarshal(f.Payload, &p)
			lat = append(lat, time.Duration(time.Now().UnixNano()-p.T))
			<-slots
		}
		done <- nil
	}()
	publishers := 4
	if window == 1 {
		publishers = 1
	}
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, publishers)
	for w := 0; w < publishers; w++ {
		go func(w int) {
			for i := w; i < b.N; i += publishers {
				slots <- struct{}{}
				m, _ := switchboard.NewMessage(switchboard.TypeEvent, map[string]int64{"t": time.Now().UnixNano()})
				if err := a.m.Publish(context.Background(), "bench", m); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < publishers; w++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(1), "max-µs")
}
