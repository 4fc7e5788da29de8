package jsonrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
)

// countingCodec counts the encodings of publications to the topic newBlocks.
type countingCodec struct {
	switchboard.Codec
	n atomic.Int64
}

func (c *countingCodec) Encode(dst []byte, m *switchboard.Message) ([]byte, error) {
	if m != nil && m.Topic == "newBlocks" {
		c.n.Add(1)
	}
	return c.Codec.Encode(dst, m)
}

type addParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

type env struct {
	t      *testing.T
	m      *switchboard.Manager
	srv    *httptest.Server
	rpc    *countingCodec // the JSON-RPC endpoint's codec
	def    *countingCodec // the default endpoint's codec
	errors atomic.Int64
}

// newEnv serves a JSON-RPC endpoint at /rpc and the default endpoint at /ws.
func newEnv(t *testing.T, cfg switchboard.Config) *env {
	t.Helper()
	e := &env{t: t, rpc: &countingCodec{Codec: jsonrpc.Codec{}}, def: &countingCodec{Codec: switchboard.JSONCodec{}}}
	cfg.Codec = e.def
	cfg.OnError = func(*switchboard.Conn, error) { e.errors.Add(1) }
	if cfg.MessageRate == 0 {
		cfg.MessageRate = 1000
	}
	e.m = switchboard.New(cfg)
	s := jsonrpc.NewServer()
	jsonrpc.Register(s, "add", func(ctx context.Context, c *switchboard.Conn, p addParams) (int, error) {
		return p.A + p.B, nil
	})
	jsonrpc.Register(s, "echo", func(ctx context.Context, c *switchboard.Conn, p json.RawMessage) (json.RawMessage, error) {
		return p, nil
	})
	jsonrpc.Register(s, "double", func(ctx context.Context, c *switchboard.Conn, n int) (int, error) {
		return 2 * n, nil
	})
	jsonrpc.Register(s, "boom", func(ctx context.Context, c *switchboard.Conn, _ struct{}) (int, error) {
		panic("boom")
	})
	jsonrpc.Register(s, "fail", func(ctx context.Context, c *switchboard.Conn, _ struct{}) (int, error) {
		return 0, jsonrpc.NewError(-32000, "block not found", map[string]int{"height": 9})
	})
	jsonrpc.Register(s, "oops", func(ctx context.Context, c *switchboard.Conn, _ struct{}) (int, error) {
		return 0, errors.New("secret detail")
	})
	jsonrpc.Register(s, "whoami", func(ctx context.Context, c *switchboard.Conn, _ struct{}) (string, error) {
		return c.UserID(), nil
	})
	ec := s.EndpointConfig(e.m)
	ec.Codec = e.rpc
	mux := http.NewServeMux()
	mux.Handle("/rpc", e.m.Endpoint(ec))
	mux.Handle("/ws", e.m)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.m.Shutdown(ctx)
		e.srv.Close()
	})
	return e
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) dial(path string, header http.Header) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		e.t.Fatalf("dial %s: %v", path, err)
	}
	e.t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: e.t, ws: ws}
}

func (c *client) send(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame, raw.
func (c *client) read() []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return b
}

// response is a decoded JSON-RPC response or notification.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

func (c *client) readResponse() response {
	c.t.Helper()
	b := c.read()
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		c.t.Fatalf("response %s: %v", b, err)
	}
	if r.JSONRPC != "2.0" {
		c.t.Fatalf("response without jsonrpc 2.0: %s", b)
	}
	return r
}

// call sends a request and returns its response.
func (c *client) call(frame string) response {
	c.t.Helper()
	c.send(frame)
	return c.readResponse()
}

// noFrame checks that nothing arrives within d.
func (c *client) noFrame(d time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, b, err := c.ws.Read(ctx); err == nil {
		c.t.Fatalf("unexpected frame %s", b)
	}
}
