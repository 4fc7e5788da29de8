package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard/auth"
)

var testSecret = []byte("test-secret-0123456789abcdef0123")

// newJWT returns the authenticator the tests use.
func newJWT(t testing.TB) auth.Authenticator {
	t.Helper()
	a, err := auth.NewJWT(auth.JWTConfig{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func token(t testing.TB, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.NewHMACToken(testSecret, user, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testServer struct {
	t   testing.TB
	m   *Manager
	srv *httptest.Server
	url string
}

// startServer runs a Manager behind a real HTTP server on 127.0.0.1. The server and manager
// are shut down at the end of the test, and the test fails if goroutines are left behind.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	base := runtime.NumGoroutine()
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = -1
	}
	m := New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	srv := httptest.NewServer(mux)
	ts := &testServer{t: t, m: m, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil && !errors.Is(err, ErrShutdown) {
			t.Errorf("Shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
		checkGoroutines(t, base)
	})
	return ts
}

// checkGoroutines waits for the goroutine count to fall back to base.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d at start, %d at end\n%s", base, n, buf)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type client struct {
	t  testing.TB
	ws *websocket.Conn
}

type dialOpts struct {
	header http.Header
	query  string
}

func (ts *testServer) dial(opts ...dialOpts) *client {
	ts.t.Helper()
	c, _, err := ts.tryDial(opts...)
	if err != nil {
		ts.t.Fatalf("dial: %v", err)
	}
	return c
}

func (ts *testServer) tryDial(opts ...dialOpts) (*client, *http.Response, error) {
	var o dialOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := ts.url
	if o.query != "" {
		u += "?" + o.query
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: o.header})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(-1)
	c := &client{t: ts.t, ws: ws}
	ts.t.Cleanup(func() { _ = ws.CloseNow() })
	return c, resp, nil
}

// send writes one JSON text frame.
func (c *client) send(v any) {
	c.t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// wire is a decoded server frame.
type wire struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id"`
	Timestamp     float64         `json:"timestamp"`
	CorrelationID string          `json:"correlation_id"`
	Topic         string          `json:"topic"`
	raw           []byte
}

func (w wire) field(name string) any {
	var m map[string]any
	_ = json.Unmarshal(w.Payload, &m)
	return m[name]
}

// read returns the next frame, failing the test after 5 s.
func (c *client) read() wire {
	c.t.Helper()
	w, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return w
}

func (c *client) tryRead(d time.Duration) (wire, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		return wire{}, err
	}
	if typ != websocket.MessageText {
		return wire{}, fmt.Errorf("frame type %v", typ)
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return wire{}, fmt.Errorf("frame %q is not one JSON object: %w", b, err)
	}
	w.raw = b
	return w, nil
}

// expect reads frames until one of type typ arrives, skipping server PINGs.
func (c *client) expect(typ string) wire {
	c.t.Helper()
	for {
		w := c.read()
		if w.Type == TypePing && typ != TypePing {
			continue
		}
		if w.Type != typ {
			c.t.Fatalf("got %s %s, want %s", w.Type, w.raw, typ)
		}
		return w
	}
}

// request sends {type, payload, id} and returns the reply with that correlation_id.
func (c *client) request(typ string, payload any, id string) wire {
	c.t.Helper()
	c.send(map[string]any{"type": typ, "payload": payload, "id": id})
	for {
		w := c.read()
		if w.CorrelationID == id {
			return w
		}
		if w.Type == TypePing {
			continue
		}
		c.t.Fatalf("waiting for reply to %s: got %s", id, w.raw)
	}
}

func (c *client) authenticate(tok string) wire {
	c.t.Helper()
	return c.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": tok}}, "auth-1")
}

func (c *client) subscribe(topics ...string) wire {
	c.t.Helper()
	return c.request(TypeSubscribe, map[string]any{"subscriptions": topics}, "sub-"+strings.Join(topics, ","))
}

// closed waits for the server to close the connection and returns the close code.
func (c *client) closed() (websocket.StatusCode, string, []wire) {
	c.t.Helper()
	var got []wire
	for {
		w, err := c.tryRead(10 * time.Second)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason, got
			}
			c.t.Fatalf("waiting for close: %v (frames %v)", err, got)
		}
		got = append(got, w)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
