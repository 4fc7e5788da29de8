package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard"
	sbnats "github.com/switchboardrt/switchboard/adapters/nats"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

var secret = []byte("nats-test-secret-0123456789abcdef")

var prefixSeq atomic.Int64

// uniquePrefix keeps tests, and runs, that share a NATS server apart.
func uniquePrefix(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	return fmt.Sprintf("sbtest.%s_%d_%d_%d", name, os.Getpid(), time.Now().UnixNano(), prefixSeq.Add(1))
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type node struct {
	t   testing.TB
	m   *switchboard.Manager
	b   *sbnats.Broker
	url string
}

func newBroker(t testing.TB, url, prefix string, extra ...nats.Option) *sbnats.Broker {
	t.Helper()
	b, err := sbnats.New(sbnats.Options{URL: url, Prefix: prefix, Logger: quietLogger(), NATSOptions: extra})
	if err != nil {
		t.Fatalf("sbnats.New: %v", err)
	}
	return b
}

// startNode runs a Manager on a NATS broker behind its own HTTP server.
func startNode(t testing.TB, url, prefix string, extra ...nats.Option) *node {
	t.Helper()
	return startNodeWith(t, url, prefix, nil, extra...)
}

// startNodeWith is startNode with configure, when not nil, adjusting the Manager's Config.
func startNodeWith(t testing.TB, url, prefix string, configure func(*switchboard.Config), extra ...nats.Option) *node {
	t.Helper()
	b := newBroker(t, url, prefix, extra...)
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := switchboard.Config{Broker: b, ConnRatePerIP: -1, Authenticator: jwt, Logger: quietLogger()}
	if configure != nil {
		configure(&cfg)
	}
	m := switchboard.New(cfg)
	srv := httptest.NewServer(m)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil && !errors.Is(err, switchboard.ErrShutdown) {
			t.Errorf("Shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return &node{t: t, m: m, b: b, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

type client struct {
	t  testing.TB
	ws *websocket.Conn
	id string
}

type frame struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id"`
	CorrelationID string          `json:"correlation_id"`
	Topic         string          `json:"topic"`
	raw           []byte
}

// dial connects a client and learns its client ID with CONNECT.
func (n *node) dial(t testing.TB) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, n.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &client{t: t, ws: ws}
	ack := c.request("CONNECT", map[string]any{}, "connect-1", "CONNECT_ACK")
	var p struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(ack.Payload, &p); err != nil || p.ClientID == "" {
		t.Fatalf("CONNECT_ACK %s: no client_id", ack.raw)
	}
	c.id = p.ClientID
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) tryRead(d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			return frame{}, err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return frame{}, fmt.Errorf("frame %q: %w", b, err)
		}
		f.raw = b
		if f.Type == "PING" {
			continue
		}
		return f, nil
	}
}

// expect reads the next frame (server PINGs aside) and checks its type.
func (c *client) expect(typ string) frame {
	c.t.Helper()
	f, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if f.Type != typ {
		c.t.Fatalf("got %s, want %s", f.raw, typ)
	}
	return f
}

// expectNothing checks that no frame arrives within d.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	if f, err := c.tryRead(d); err == nil {
		c.t.Fatalf("unexpected frame %s", f.raw)
	}
}

func (c *client) request(typ string, payload any, id, want string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": typ, "payload": payload, "id": id})
	f := c.expect(want)
	if f.CorrelationID != id {
		c.t.Fatalf("reply %s does not answer %s", f.raw, id)
	}
	return f
}

func (c *client) subscribe(topics ...string) {
	c.t.Helper()
	c.request("SUBSCRIBE", map[string]any{"subscriptions": topics}, "sub-"+strings.Join(topics, ","), "SUBSCRIBE_SUCCESS")
}

func (c *client) unsubscribe(topics ...string) {
	c.t.Helper()
	c.request("UNSUBSCRIBE", map[string]any{"subscriptions": topics}, "unsub-"+strings.Join(topics, ","), "UNSUBSCRIBE_ACK")
}

func (c *client) authenticate(user string) {
	c.t.Helper()
	tok, err := auth.NewHMACToken(secret, user, time.Hour, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.request("AUTHENTICATE", map[string]any{"auth": map[string]any{"token": tok}}, "auth-1", "AUTHENTICATE_SUCCESS")
}

// expectEvent reads the next frame and checks it is the EVENT with the given name.
func (c *client) expectEvent(name string) frame {
	c.t.Helper()
	f := c.expect("EVENT")
	var p struct {
		Event string `json:"event"`
	}
	_ = json.Unmarshal(f.Payload, &p)
	if p.Event != name {
		c.t.Fatalf("got %s, want event %q", f.raw, name)
	}
	return f
}

func event(t testing.TB, name string) *switchboard.Message {
	t.Helper()
	m, err := switchboard.NewEvent(name, map[string]any{"n": name})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// privateServer is a nats-server of the test's own, on a port of its own.
type privateServer struct {
	t    testing.TB
	port string
	cmd  *exec.Cmd
}

func startPrivateServer(t testing.TB) *privateServer {
	t.Helper()
	if _, err := exec.LookPath("nats-server"); err != nil {
		testenv.Unavailable(t, "nats-server is not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	s := &privateServer{t: t, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *privateServer) url() string { return "nats://127.0.0.1:" + s.port }

func (s *privateServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("nats-server", "-a", "127.0.0.1", "-p", s.port)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+s.port, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("nats-server on port %s did not start: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server, once.
func (s *privateServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
