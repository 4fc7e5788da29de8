package jsonrpc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
	"github.com/switchboardrt/switchboard/adapters/notifier"
)

// eventCodec counts the encodings of EVENT messages.
type eventCodec struct {
	switchboard.Codec
	n atomic.Int64
}

func (c *eventCodec) Encode(dst []byte, m *switchboard.Message) ([]byte, error) {
	if m != nil && m.Type == switchboard.TypeEvent {
		c.n.Add(1)
	}
	return c.Codec.Encode(dst, m)
}

// One manager, three wire formats: a Broadcast reaches a client of each endpoint — the
// default envelope, the plain notifier format and JSON-RPC — encoded once per codec.
func TestBroadcastReachesEveryEndpoint(t *testing.T) {
	var encodes [3]atomic.Int64
	def := &eventCodec{Codec: switchboard.JSONCodec{}}
	m := switchboard.New(switchboard.Config{Codec: def, ConnRatePerIP: -1})
	agg := notifier.New(m, notifier.Options{})
	rpc := jsonrpc.NewServer()
	rpcCfg := rpc.EndpointConfig(m)
	rpcCodec := &eventCodec{Codec: rpcCfg.Codec}
	rpcCfg.Codec = rpcCodec
	notifyCodec := &eventCodec{Codec: notifier.Codec{}}

	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	mux.Handle("/notify", m.Endpoint(switchboard.EndpointConfig{Codec: notifyCodec, Protocol: agg.Protocol()}))
	mux.Handle("/rpc", m.Endpoint(rpcCfg))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(path string) *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		return ws
	}
	wsC, notifyC, rpcC := dial("/ws"), dial("/notify"), dial("/rpc")

	// Make sure each is registered (and the notifier client subscribed) before broadcasting.
	_ = wsC.Write(ctx, websocket.MessageText, []byte(`{"type":"PING","id":"p"}`))
	if _, b, err := wsC.Read(ctx); err != nil || !strings.Contains(string(b), `"PONG"`) {
		t.Fatalf("default endpoint: %s %v", b, err)
	}
	_ = rpcC.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","method":"nosuch","id":1}`))
	if _, b, err := rpcC.Read(ctx); err != nil || !strings.Contains(string(b), `-32601`) {
		t.Fatalf("rpc endpoint: %s %v", b, err)
	}
	_ = notifyC.Write(ctx, websocket.MessageText, []byte(`{}`))
	for agg.Subscribers() == 0 {
		if ctx.Err() != nil {
			t.Fatal("notifier client never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	encodes[0].Store(def.n.Load())
	encodes[1].Store(notifyCodec.n.Load())
	encodes[2].Store(rpcCodec.n.Load())

	msg, err := switchboard.NewEvent("maintenance", map[string]int{"in_minutes": 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Broadcast(ctx, msg); err != nil {
		t.Fatal(err)
	}
	read := func(ws *websocket.Conn) map[string]json.RawMessage {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return v
	}
	if v := read(wsC); string(v["type"]) != `"EVENT"` || !strings.Contains(string(v["payload"]), `"maintenance"`) {
		t.Errorf("default endpoint got %v", v)
	}
	if v := read(notifyC); len(v) != 2 || string(v["type"]) != `"event"` || !strings.Contains(string(v["data"]), `"maintenance"`) {
		t.Errorf("notifier endpoint got %v", v)
	}
	if v := read(rpcC); string(v["jsonrpc"]) != `"2.0"` || string(v["method"]) != `"event"` || !strings.Contains(string(v["params"]), `"maintenance"`) {
		t.Errorf("rpc endpoint got %v", v)
	}
	for i, c := range []*eventCodec{def, notifyCodec, rpcCodec} {
		if got := c.n.Load() - encodes[i].Load(); got != 1 {
			t.Errorf("codec %s encoded the broadcast %d times, want 1", c.Name(), got)
		}
	}
}
