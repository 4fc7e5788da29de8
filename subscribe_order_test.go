package switchboard

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SUBSCRIBE_SUCCESS comes before anything published to the topic, with or without history:
// a client may set up its handlers from the reply. A publisher hammers the topic being
// subscribed while the client subscribes 200 times, each time to a fresh topic.
func TestSubscribeReplyPrecedesPublications(t *testing.T) {
	for _, tc := range []struct {
		name string
		hist []HistoryRule
	}{
		{"no history", nil},
		{"history", []HistoryRule{{Pattern: "t*"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{SendQueueSize: 1 << 20, MessageRate: -1, History: tc.hist, PingInterval: -1})
			c := ts.dial()
			ctx, cancel := context.WithCancel(context.Background())
			var cur atomic.Int64
			cur.Store(-1)
			var published atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := cur.Load()
					if i < 0 {
						runtime.Gosched()
						continue
					}
					msg, _ := NewMessage("tick", map[string]int{"n": 1})
					if ts.m.Publish(ctx, fmt.Sprintf("t%d", i), msg) == nil {
						published.Add(1)
					}
				}
			}()
			defer func() { cancel(); wg.Wait() }()

			const rounds = 200
			early, after := 0, 0
			for i := 0; i < rounds; i++ {
				id, topic := fmt.Sprintf("s%d", i), fmt.Sprintf("t%d", i)
				cur.Store(int64(i))
				c.send(map[string]any{"type": TypeSubscribe, "id": id, "payload": map[string]any{"subscriptions": []string{topic}}})
				sawEarly := false
				for {
					w, err := c.tryRead(10 * time.Second)
					if err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
					if w.CorrelationID == id {
						break
					}
					sawEarly = sawEarly || w.Topic == topic
				}
				if sawEarly {
					early++
				}
				// Wait for one publication of the topic after the reply, so that every round
				// shows the publisher was running while the client subscribed.
				for {
					w, err := c.tryRead(10 * time.Second)
					if err != nil {
						t.Fatalf("round %d, waiting for a publication: %v", i, err)
					}
					if w.Topic == topic {
						after++
						break
					}
				}
				cur.Store(-1)
				uid := fmt.Sprintf("u%d", i)
				c.send(map[string]any{"type": TypeUnsubscribe, "id": uid, "payload": map[string]any{"subscriptions": []string{topic}}})
				for w := c.read(); w.CorrelationID != uid; w = c.read() {
				}
			}
			if early > 0 {
				t.Fatalf("a publication came before SUBSCRIBE_SUCCESS in %d of %d subscribes", early, rounds)
			}
			if after != rounds || published.Load() == 0 {
				t.Fatalf("%d rounds saw a publication after the reply, %d published", after, published.Load())
			}
		})
	}
}
