package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

var secret = []byte("redis-test-secret-0123456789abcd")

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)

// uniquePrefix gives each test its own channels on the shared Redis.
func uniquePrefix(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "sbtest:" + nonAlnum.ReplaceAllString(t.Name(), "_") + ":" + hex.EncodeToString(b[:])
}

func newBroker(t testing.TB, url, prefix string) *Broker {
	t.Helper()
	b, err := New(Options{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawClient is a plain go-redis client on url, for inspecting Redis.
func rawClient(t testing.TB, url string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// leakCheck records the goroutine count and, at the end of the test (after the cleanups
// registered later have run), waits for it to fall back. Call it first.
func leakCheck(t testing.TB) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d at start, %d at end\n%s", base, runtime.NumGoroutine(), buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// node is one switchboard node: a Manager with a Redis broker behind an HTTP server.
type node struct {
	t   testing.TB
	m   *switchboard.Manager
	b   *Broker
	srv *httptest.Server
	url string
}

// startNode runs a Manager on a Redis broker behind its own HTTP server; configure, if
// given, adjusts its Config first.
func startNode(t testing.TB, url, prefix string, configure ...func(*switchboard.Config)) *node {
	t.Helper()
	var cfg switchboard.Config
	for _, f := range configure {
		f(&cfg)
	}
	return startNodeWith(t, url, prefix, cfg)
}

// startNodeWith starts a node whose Config is cfg with the test's broker, authenticator and
// connection rate.
func startNodeWith(t testing.TB, url, prefix string, cfg switchboard.Config) *node {
	t.Helper()
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, url, prefix)
	cfg.Broker, cfg.ConnRatePerIP, cfg.Authenticator = b, -1, jwt
	m := switchboard.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	srv := httptest.NewServer(mux)
	n := &node{t: t, m: m, b: b, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil && !errors.Is(err, switchboard.ErrShutdown) {
			t.Errorf("Shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return n
}

type client struct {
	t  testing.TB
	ws *websocket.Conn
	id string
}

type frame struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	CorrelationID string          `json:"correlation_id"`
	Topic         string          `json:"topic"`
	raw           []byte
}

func (f frame) field(name string) any {
	var m map[string]any
	_ = json.Unmarshal(f.Payload, &m)
	return m[name]
}

// dial connects to n, as user when user is not empty, sends CONNECT and records the
// client ID from CONNECT_ACK.
func (n *node) dial(user string) *client {
	n.t.Helper()
	u := n.url
	if user != "" {
		tok, err := auth.NewHMACToken(secret, user, time.Hour, nil)
		if err != nil {
			n.t.Fatal(err)
		}
		u += "?token=" + tok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		n.t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	n.t.Cleanup(func() { _ = ws.CloseNow() })
	c := &client{t: n.t, ws: ws}
	ack := c.request(switchboard.TypeConnect, nil, "connect-1")
	c.id, _ = ack.field("client_id").(string)
	if ack.Type != switchboard.TypeConnectAck || c.id == "" {
		n.t.Fatalf("CONNECT answered with %s", ack.raw)
	}
	if user != "" && ack.field("user_id") != user {
		n.t.Fatalf("handshake token for %s not accepted: %s", user, ack.raw)
	}
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

// tryRead returns the next frame other than a server PING.
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
		if f.Type == switchboard.TypePing {
			continue
		}
		return f, nil
	}
}

func (c *client) read() frame {
	c.t.Helper()
	f, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) request(typ string, payload any, id string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": typ, "payload": payload, "id": id})
	for {
		f := c.read()
		if f.CorrelationID == id {
			return f
		}
		c.t.Fatalf("waiting for the reply to %s: got %s", id, f.raw)
	}
}

func (c *client) subscribe(topics ...string) {
	c.t.Helper()
	f := c.request(switchboard.TypeSubscribe, map[string]any{"subscriptions": topics}, "sub-"+strings.Join(topics, ","))
	if f.Type != switchboard.TypeSubscribeSuccess {
		c.t.Fatalf("SUBSCRIBE %v: %s", topics, f.raw)
	}
}

func (c *client) unsubscribe(topics ...string) {
	c.t.Helper()
	f := c.request(switchboard.TypeUnsubscribe, map[string]any{"subscriptions": topics}, "unsub-"+strings.Join(topics, ","))
	if f.Type != switchboard.TypeUnsubscribeAck {
		c.t.Fatalf("UNSUBSCRIBE %v: %s", topics, f.raw)
	}
}

// expect reads the next frame and checks its type and payload field "n".
func (c *client) expect(typ string, n float64) frame {
	c.t.Helper()
	f := c.read()
	if f.Type != typ || f.field("n") != n {
		c.t.Fatalf("got %s, want %s with n=%v", f.raw, typ, n)
	}
	return f
}

// quiet checks that nothing arrives for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	if f, err := c.tryRead(d); err == nil {
		c.t.Fatalf("expected nothing, got %s", f.raw)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatalf("expected nothing, got error %v", err)
	}
}

func msg(t testing.TB, typ string, n int) *switchboard.Message {
	t.Helper()
	m, err := switchboard.NewMessage(typ, map[string]any{"n": n})
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

// privateRedis is a redis-server of the test's own, on a free port, that the test may kill
// and restart. The shared Redis is never touched.
type privateRedis struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Unavailable(t, "redis-server is not installed: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &privateRedis{t: t, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.port), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d did not come up: %v", r.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server and waits for it to exit.
func (r *privateRedis) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// stream reads c's frames (server PINGs aside) in a goroutine, until the connection ends;
// unlike tryRead, waiting on it with a timeout does not close the connection.
func (c *client) stream() <-chan frame {
	out := make(chan frame, 1024)
	go func() {
		defer close(out)
		for {
			f, err := c.tryRead(time.Hour)
			if err != nil {
				return
			}
			out <- f
		}
	}()
	return out
}

func next(t testing.TB, frames <-chan frame, d time.Duration) (frame, bool) {
	t.Helper()
	select {
	case f, ok := <-frames:
		if !ok {
			t.Fatal("connection closed")
		}
		return f, true
	case <-time.After(d):
		return frame{}, false
	}
}

// quietLogger drops go-redis's own log lines (dial failures while a test's Redis is down).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}
