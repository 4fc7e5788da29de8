package jsonrpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
)

// The subscribe result comes before the first push of the topic: a publisher hammers the
// topic being subscribed while the client subscribes 200 times, each time to a fresh topic.
func TestSubscribeResultPrecedesPushes(t *testing.T) {
	e := newEnv(t, switchboard.Config{SendQueueSize: 1 << 20, MessageRate: -1, PingInterval: -1})
	c := e.dial("/rpc", nil)
	ctx, cancel := context.WithCancel(context.Background())
	var cur atomic.Int64
	cur.Store(-1)
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
			msg, _ := switchboard.NewMessage("BLOCK", map[string]int64{"round": i})
			_ = e.m.Publish(ctx, fmt.Sprintf("blocks.%d", i), msg)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	const rounds = 200
	early := 0
	for i := 0; i < rounds; i++ {
		topic := fmt.Sprintf("blocks.%d", i)
		sub := jsonrpc.SubscriptionID(topic)
		cur.Store(int64(i))
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"subscribe","params":[%q],"id":%d}`, topic, i))
		sawEarly := false
		for {
			r := c.readResponse()
			if string(r.ID) == fmt.Sprint(i) {
				if string(r.Result) != `"`+sub+`"` {
					t.Fatalf("round %d: subscribe answered %+v", i, r)
				}
				break
			}
			var p struct {
				Subscription string `json:"subscription"`
			}
			if r.Method == "subscription" && json.Unmarshal(r.Params, &p) == nil && p.Subscription == sub {
				sawEarly = true
			}
		}
		if sawEarly {
			early++
		}
		// One push of the topic after the result: the publisher was running meanwhile.
		for {
			r := c.readResponse()
			var p struct {
				Subscription string `json:"subscription"`
			}
			if r.Method == "subscription" && json.Unmarshal(r.Params, &p) == nil && p.Subscription == sub {
				break
			}
		}
		cur.Store(-1)
		c.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"unsubscribe","params":[%q],"id":"u%d"}`, sub, i))
		for r := c.readResponse(); string(r.ID) != fmt.Sprintf(`"u%d"`, i); r = c.readResponse() {
		}
	}
	if early > 0 {
		t.Fatalf("a push came before the subscribe result in %d of %d subscribes", early, rounds)
	}
}
