package jsonrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
	"github.com/switchboardrt/switchboard/auth"
)

func TestStandardErrors(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	tests := []struct {
		name  string
		frame string
		code  int
		id    string
	}{
		{"malformed JSON", `{"jsonrpc":"2.0","method":`, jsonrpc.CodeParseError, "null"},
		{"wrong version", `{"jsonrpc":"1.0","method":"add","id":1}`, jsonrpc.CodeInvalidRequest, "1"},
		{"missing version", `{"method":"add","id":11}`, jsonrpc.CodeInvalidRequest, "11"},
		{"missing method", `{"jsonrpc":"2.0","id":2}`, jsonrpc.CodeInvalidRequest, "2"},
		{"method not a string", `{"jsonrpc":"2.0","method":5,"id":"x"}`, jsonrpc.CodeInvalidRequest, `"x"`},
		{"params a string", `{"jsonrpc":"2.0","method":"add","params":"a","id":12}`, jsonrpc.CodeInvalidRequest, "12"},
		{"id an object", `{"jsonrpc":"2.0","method":"add","id":{}}`, jsonrpc.CodeInvalidRequest, "null"},
		{"not an object", `42`, jsonrpc.CodeInvalidRequest, "null"},
		{"empty batch", `[]`, jsonrpc.CodeInvalidRequest, "null"},
		{"method not found", `{"jsonrpc":"2.0","method":"nope","id":3}`, jsonrpc.CodeMethodNotFound, "3"},
		{"wrong params type", `{"jsonrpc":"2.0","method":"add","params":["a","b"],"id":4}`, jsonrpc.CodeInvalidParams, "4"},
		{"unknown named param", `{"jsonrpc":"2.0","method":"add","params":{"c":1},"id":5}`, jsonrpc.CodeInvalidParams, "5"},
		{"too many positional", `{"jsonrpc":"2.0","method":"double","params":[1,2],"id":6}`, jsonrpc.CodeInvalidParams, "6"},
		{"handler panic", `{"jsonrpc":"2.0","method":"boom","id":7}`, jsonrpc.CodeInternalError, "7"},
		{"handler error", `{"jsonrpc":"2.0","method":"oops","id":8}`, jsonrpc.CodeInternalError, "8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.call(tt.frame)
			if r.Error == nil {
				t.Fatalf("no error in response: %+v", r)
			}
			if r.Error.Code != tt.code || string(r.ID) != tt.id {
				t.Fatalf("got code %d id %s, want %d id %s", r.Error.Code, r.ID, tt.code, tt.id)
			}
			if r.Result != nil {
				t.Fatalf("error response with a result: %s", r.Result)
			}
			if strings.Contains(r.Error.Message+string(r.Error.Data), "secret detail") {
				t.Fatal("internal error leaks the handler's error")
			}
		})
	}
	// The connection survives all of it, the panic included.
	if r := c.call(`{"jsonrpc":"2.0","method":"add","params":[2,3],"id":"after"}`); string(r.Result) != "5" || string(r.ID) != `"after"` {
		t.Fatalf("after errors: %+v", r)
	}
	if e.errors.Load() < 2 {
		t.Fatalf("OnError saw %d errors, want the panic and the handler error", e.errors.Load())
	}
}

func TestParams(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	tests := []struct{ frame, result string }{
		{`{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}`, "3"},
		{`{"jsonrpc":"2.0","method":"add","params":[1],"id":1}`, "1"},
		{`{"jsonrpc":"2.0","method":"add","params":{"a":4,"b":5},"id":1}`, "9"},
		{`{"jsonrpc":"2.0","method":"add","id":1}`, "0"},
		{`{"jsonrpc":"2.0","method":"add","params":null,"id":1}`, "0"},
		{`{"jsonrpc":"2.0","method":"double","params":[21],"id":1}`, "42"},
		{`{"jsonrpc":"2.0","method":"echo","params":{"x":[1,"y"]},"id":1}`, `{"x":[1,"y"]}`},
		{`{"jsonrpc":"2.0","method":"echo","params":[true],"id":null}`, `[true]`},
	}
	for _, tt := range tests {
		r := c.call(tt.frame)
		if r.Error != nil || string(r.Result) != tt.result {
			t.Errorf("%s: got result %s error %+v, want %s", tt.frame, r.Result, r.Error, tt.result)
		}
	}
}

func TestApplicationError(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	c.send(`{"jsonrpc":"2.0","method":"fail","id":"f1"}`)
	b := c.read()
	want := `{"jsonrpc":"2.0","error":{"code":-32000,"message":"block not found","data":{"height":9}},"id":"f1"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestBatch(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	c.send(`[
		{"jsonrpc":"2.0","method":"add","params":[1,2],"id":"a"},
		{"jsonrpc":"2.0","method":"add","params":[5,5]},
		{"jsonrpc":"2.0","method":"nope","id":"b"},
		{"foo":"boo"},
		{"jsonrpc":"2.0","method":"double","params":{"x":1},"id":"c"},
		1,
		{"jsonrpc":"2.0","method":"double","params":[4],"id":"d"},
		{"jsonrpc":"2.0","method":"boom"}
	]`)
	var rs []response
	if err := json.Unmarshal(c.read(), &rs); err != nil {
		t.Fatal(err)
	}
	byID := map[string]response{}
	nulls := 0
	for _, r := range rs {
		if string(r.ID) == "null" {
			nulls++
			if r.Error == nil || r.Error.Code != jsonrpc.CodeInvalidRequest {
				t.Errorf("null-id response: %+v", r)
			}
			continue
		}
		byID[string(r.ID)] = r
	}
	if len(rs) != 6 || nulls != 2 || len(byID) != 4 {
		t.Fatalf("got %d responses (%d with null id): %+v", len(rs), nulls, rs)
	}
	if r := byID[`"a"`]; string(r.Result) != "3" {
		t.Errorf("a: %+v", r)
	}
	if r := byID[`"b"`]; r.Error == nil || r.Error.Code != jsonrpc.CodeMethodNotFound {
		t.Errorf("b: %+v", r)
	}
	if r := byID[`"c"`]; r.Error == nil || r.Error.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("c: %+v", r)
	}
	if r := byID[`"d"`]; string(r.Result) != "8" {
		t.Errorf("d: %+v", r)
	}

	// A batch of notifications only gets no response: the next frame answers the request.
	c.send(`[{"jsonrpc":"2.0","method":"add","params":[1,1]},{"jsonrpc":"2.0","method":"nope"}]`)
	if r := c.call(`{"jsonrpc":"2.0","method":"double","params":[1],"id":99}`); string(r.ID) != "99" {
		t.Fatalf("first frame after a notification batch: %+v", r)
	}
}

func TestNotificationGetsNoResponse(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	c.send(`{"jsonrpc":"2.0","method":"add","params":[1,2]}`)
	c.send(`{"jsonrpc":"2.0","method":"boom"}`)
	c.send(`{"jsonrpc":"2.0","method":"nope"}`)
	r := c.call(`{"jsonrpc":"2.0","method":"double","params":[3],"id":7}`)
	if string(r.ID) != "7" || string(r.Result) != "6" {
		t.Fatalf("first response is not the request's: %+v", r)
	}
}

func TestSubscribePushUnsubscribe(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	r := c.call(`{"jsonrpc":"2.0","method":"subscribe","params":["newBlocks"],"id":1}`)
	var subID string
	if err := json.Unmarshal(r.Result, &subID); err != nil || subID != jsonrpc.SubscriptionID("newBlocks") {
		t.Fatalf("subscribe: %+v (want %s)", r, jsonrpc.SubscriptionID("newBlocks"))
	}
	if len(subID) != 18 || !strings.HasPrefix(subID, "0x") {
		t.Fatalf("subscription id %q", subID)
	}
	// Subscribing again is a success with the same id; by name works too.
	if r := c.call(`{"jsonrpc":"2.0","method":"subscribe","params":{"topic":"newBlocks"},"id":2}`); string(r.Result) != `"`+subID+`"` {
		t.Fatalf("resubscribe: %+v", r)
	}

	msg, _ := switchboard.NewMessage("BLOCK", map[string]any{"height": 7})
	if err := e.m.Publish(context.Background(), "newBlocks", msg); err != nil {
		t.Fatal(err)
	}
	want := `{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"` + subID + `","result":{"height":7}}}`
	if b := c.read(); string(b) != want {
		t.Fatalf("push:\n got %s\nwant %s", b, want)
	}

	if r := c.call(`{"jsonrpc":"2.0","method":"unsubscribe","params":["` + subID + `"],"id":3}`); string(r.Result) != "true" {
		t.Fatalf("unsubscribe: %+v", r)
	}
	if r := c.call(`{"jsonrpc":"2.0","method":"unsubscribe","params":["` + subID + `"],"id":4}`); string(r.Result) != "false" {
		t.Fatalf("second unsubscribe: %+v", r)
	}
	// Publish, then call: the publication would be queued before the response.
	if err := e.m.Publish(context.Background(), "newBlocks", msg); err != nil {
		t.Fatal(err)
	}
	if r := c.call(`{"jsonrpc":"2.0","method":"double","params":[1],"id":5}`); string(r.ID) != "5" {
		t.Fatalf("push after unsubscribe: %+v", r)
	}

	// Bad subscriptions.
	if r := c.call(`{"jsonrpc":"2.0","method":"subscribe","params":["bad topic!"],"id":6}`); r.Error == nil || r.Error.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("invalid topic: %+v", r)
	}
	if r := c.call(`{"jsonrpc":"2.0","method":"subscribe","params":["user:someone"],"id":7}`); r.Error == nil || r.Error.Code != jsonrpc.CodeForbidden {
		t.Fatalf("forbidden topic: %+v", r)
	}
	if r := c.call(`{"jsonrpc":"2.0","method":"subscribe","params":[],"id":8}`); r.Error == nil || r.Error.Code != jsonrpc.CodeInvalidParams {
		t.Fatalf("no topic: %+v", r)
	}
}

func TestBroadcastAndErrorNotifications(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	c := e.dial("/rpc", nil)
	c.call(`{"jsonrpc":"2.0","method":"double","params":[1],"id":1}`) // registered
	n, _ := switchboard.NewNotification(switchboard.Notification{Title: "hi", Message: "there"})
	if err := e.m.Broadcast(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	r := c.readResponse()
	if r.Method != "notification" || r.ID != nil || !strings.Contains(string(r.Params), `"title":"hi"`) {
		t.Fatalf("notification: %+v", r)
	}
}

const secret = "jsonrpc-test-secret"

func authEnv(t *testing.T, require bool) (*env, string) {
	a, err := auth.NewJWT(auth.JWTConfig{HMACSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewHMACToken([]byte(secret), "alice", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, switchboard.Config{Authenticator: a, RequireAuth: require}), tok
}

func TestAuthHandshakeToken(t *testing.T) {
	e, tok := authEnv(t, true)
	c := e.dial("/rpc", http.Header{"Authorization": {"Bearer " + tok}})
	if r := c.call(`{"jsonrpc":"2.0","method":"whoami","id":1}`); string(r.Result) != `"alice"` {
		t.Fatalf("whoami: %+v", r)
	}
}

func TestAuthBadHandshakeToken(t *testing.T) {
	e, _ := authEnv(t, false)
	c := e.dial("/rpc", http.Header{"Authorization": {"Bearer nope"}})
	r := c.readResponse()
	var p struct{ Code, Message string }
	_ = json.Unmarshal(r.Params, &p)
	if r.Method != "error" || p.Code != "unauthorized" || p.Message == "" {
		t.Fatalf("error notification: %+v", r)
	}
}

func TestRequireAuthAndAuthenticateMethod(t *testing.T) {
	e, tok := authEnv(t, true)
	c := e.dial("/rpc", nil)
	for _, f := range []string{
		`{"jsonrpc":"2.0","method":"whoami","id":1}`,
		`{"jsonrpc":"2.0","method":"subscribe","params":["newBlocks"],"id":1}`,
		`{"jsonrpc":"2.0","method":"nope","id":1}`,
	} {
		if r := c.call(f); r.Error == nil || r.Error.Code != jsonrpc.CodeUnauthorized || r.Error.Message != "unauthorized" {
			t.Fatalf("%s before auth: %+v", f, r)
		}
	}
	r := c.call(`{"jsonrpc":"2.0","method":"authenticate","params":["garbage"],"id":2}`)
	if r.Error == nil || r.Error.Code != jsonrpc.CodeUnauthorized || !strings.Contains(string(r.Error.Data), "reason") {
		t.Fatalf("bad token: %+v", r)
	}
	r = c.call(`{"jsonrpc":"2.0","method":"authenticate","params":{"token":"` + tok + `"},"id":3}`)
	var res struct {
		UserID    string `json:"user_id"`
		ExpiresAt int64  `json:"expires_at"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || res.UserID != "alice" || res.ExpiresAt == 0 {
		t.Fatalf("authenticate: %+v", r)
	}
	if r := c.call(`{"jsonrpc":"2.0","method":"whoami","id":4}`); string(r.Result) != `"alice"` {
		t.Fatalf("whoami: %+v", r)
	}
	// Positional form, on a fresh connection.
	c2 := e.dial("/rpc", nil)
	if r := c2.call(`{"jsonrpc":"2.0","method":"authenticate","params":["` + tok + `"],"id":1}`); r.Error != nil {
		t.Fatalf("authenticate [token]: %+v", r)
	}
}

// TestEncodeOnce: a publication to 20 JSON-RPC subscribers and 1 default-endpoint
// subscriber is encoded once by each codec, and all of them receive it.
func TestEncodeOnce(t *testing.T) {
	e := newEnv(t, switchboard.Config{})
	var rpcs []*client
	for i := 0; i < 20; i++ {
		c := e.dial("/rpc", nil)
		if r := c.call(`{"jsonrpc":"2.0","method":"subscribe","params":["newBlocks"],"id":1}`); r.Error != nil {
			t.Fatalf("subscribe: %+v", r)
		}
		rpcs = append(rpcs, c)
	}
	d := e.dial("/ws", nil)
	d.send(`{"type":"SUBSCRIBE","payload":{"subscriptions":["newBlocks"]},"id":"s1"}`)
	if b := d.read(); !strings.Contains(string(b), "SUBSCRIBE_SUCCESS") {
		t.Fatalf("default subscribe: %s", b)
	}
	e.rpc.n.Store(0)
	e.def.n.Store(0)

	msg, _ := switchboard.NewMessage("BLOCK", map[string]any{"height": 1})
	if err := e.m.Publish(context.Background(), "newBlocks", msg); err != nil {
		t.Fatal(err)
	}
	if n := e.rpc.n.Load(); n != 1 {
		t.Errorf("JSON-RPC codec encoded %d times, want 1", n)
	}
	if n := e.def.n.Load(); n != 1 {
		t.Errorf("default codec encoded %d times, want 1", n)
	}
	var wg sync.WaitGroup
	got := make([]string, len(rpcs))
	for i, c := range rpcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, b, err := c.ws.Read(ctx)
			if err == nil {
				got[i] = string(b)
			}
		}()
	}
	wg.Wait()
	want := `{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"` + jsonrpc.SubscriptionID("newBlocks") + `","result":{"height":1}}}`
	sort.Strings(got)
	if got[0] != want || got[len(got)-1] != want {
		t.Fatalf("JSON-RPC clients got %q, want %s", got, want)
	}
	var env struct {
		Type    string          `json:"type"`
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(d.read(), &env); err != nil || env.Type != "BLOCK" || env.Topic != "newBlocks" || string(env.Payload) != `{"height":1}` {
		t.Fatalf("default client got %+v (%v)", env, err)
	}
}

// TestProtocolPing: the codec has no PING, so the manager sends WebSocket pings; a client
// that reads (and so answers them) stays connected.
func TestProtocolPing(t *testing.T) {
	e := newEnv(t, switchboard.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond})
	c := e.dial("/rpc", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	_, b, err := c.ws.Read(ctx) // answers pings while waiting; nothing else arrives
	if err == nil {
		t.Fatalf("unexpected frame %s", b)
	}
	if ctx.Err() == nil {
		t.Fatalf("connection ended before the deadline: %v", err)
	}
	// A fresh connection that reads is still served after a second of pings.
	c2 := e.dial("/rpc", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(1100 * time.Millisecond)
	}()
	c2ws := c2.ws
	readCtx, readCancel := context.WithCancel(context.Background())
	defer readCancel()
	frames := make(chan []byte, 1)
	go func() {
		for {
			_, b, err := c2ws.Read(readCtx)
			if err != nil {
				close(frames)
				return
			}
			frames <- b
		}
	}()
	<-done
	if err := c2ws.Write(context.Background(), websocket.MessageText, []byte(`{"jsonrpc":"2.0","method":"double","params":[2],"id":1}`)); err != nil {
		t.Fatalf("write after 1.1s of pings: %v", err)
	}
	select {
	case b, ok := <-frames:
		if !ok || !strings.Contains(string(b), `"result":4`) {
			t.Fatalf("after pings: %s (open %v)", b, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
	// Clean close handshake initiated by the client.
	readCancel()
}

func TestCloseHandshake(t *testing.T) {
	codes := make(chan int, 1)
	e := newEnv(t, switchboard.Config{OnDisconnect: func(_ *switchboard.Conn, code int, _ string) { codes <- code }})
	c := e.dial("/rpc", nil)
	c.call(`{"jsonrpc":"2.0","method":"double","params":[1],"id":1}`)
	if err := c.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	select {
	case code := <-codes:
		if code != switchboard.CloseNormal {
			t.Fatalf("server saw close code %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not see the close")
	}
}

func TestCodecEncode(t *testing.T) {
	var c jsonrpc.Codec
	for _, typ := range []string{switchboard.TypePing, switchboard.TypePong, switchboard.TypeConnectAck, switchboard.TypeDisconnect} {
		if _, err := c.Encode(nil, &switchboard.Message{Type: typ}); !errors.Is(err, switchboard.ErrUnsupported) {
			t.Errorf("%s: err %v, want ErrUnsupported", typ, err)
		}
	}
	b, err := c.Encode(nil, switchboard.NewError(switchboard.CodeRateLimited, "slow down"))
	if err != nil || string(b) != `{"jsonrpc":"2.0","method":"error","params":{"code":"rate_limited","message":"slow down"}}` {
		t.Errorf("ERROR: %s %v", b, err)
	}
	b, err = c.Encode(nil, &switchboard.Message{Type: "BLOCK", Topic: "t"})
	if err != nil || string(b) != `{"jsonrpc":"2.0","method":"subscription","params":{"subscription":"`+jsonrpc.SubscriptionID("t")+`","result":null}}` {
		t.Errorf("push without payload: %s %v", b, err)
	}
	var m switchboard.Message
	if err := c.Decode([]byte(`{"jsonrpc":"2.0","method":"m","params":[1],"id":7}`), &m); err != nil || m.Type != "m" || m.ID != "7" || string(m.Payload) != "[1]" {
		t.Errorf("Decode: %+v %v", m, err)
	}
	if err := c.Decode([]byte(`{"jsonrpc":"1.0","method":"m"}`), &m); !errors.Is(err, switchboard.ErrBadMessage) {
		t.Errorf("Decode bad: %v", err)
	}
}
