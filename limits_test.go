package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// limDisconnects records Config.OnDisconnect calls by client ID.
type limDisconnects struct {
	mu    sync.Mutex
	codes map[string][]int
	why   map[string]string
}

func (d *limDisconnects) hook(c *Conn, code int, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.codes == nil {
		d.codes, d.why = map[string][]int{}, map[string]string{}
	}
	d.codes[c.ID()] = append(d.codes[c.ID()], code)
	d.why[c.ID()] = reason
}

func (d *limDisconnects) get(id string) ([]int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.codes[id]...), d.why[id]
}

// waitCode waits until OnDisconnect was called for id and checks it was called once, with code.
func (d *limDisconnects) waitCode(t testing.TB, id string, code int) string {
	t.Helper()
	waitFor(t, "OnDisconnect of "+id, func() bool { c, _ := d.get(id); return len(c) > 0 })
	codes, reason := d.get(id)
	if len(codes) != 1 || codes[0] != code {
		t.Fatalf("OnDisconnect codes for %s: %v (reason %q), want [%d]", id, codes, reason, code)
	}
	return reason
}

// limDialSmallBuffer dials with a 4 KiB socket receive buffer, so that a client that stops
// reading stalls the server's writes quickly.
func limDialSmallBuffer(t testing.TB, ts *testServer) *client {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ts.url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() {
		_ = ws.CloseNow()
		hc.CloseIdleConnections()
	})
	return &client{t: t, ws: ws}
}

// TestSlowConsumer: a subscriber that stops reading is closed with 1013 once its queue
// overflows, while the publisher never blocks and a reading subscriber of the same topic gets
// every message in order.
func TestSlowConsumer(t *testing.T) {
	const (
		total = 2000
		size  = 16 << 10
		queue = 8
	)
	var gone limDisconnects
	// No server PINGs: on a loaded machine the test may outlast the interval, and the fast
	// client expects only DATA.
	ts := startServer(t, Config{SendQueueSize: queue, OnDisconnect: gone.hook, PingInterval: -1})

	slow := limDialSmallBuffer(t, ts)
	slowID := bcConnect(t, slow)
	if r := slow.subscribe("firehose"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	fast := ts.dial()
	fastID := bcConnect(t, fast)
	if r := fast.subscribe("firehose"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	// From here on the slow client never reads.

	var got atomic.Int64 // messages the fast client has read, in order
	readErr := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			w, err := fast.tryRead(30 * time.Second)
			if err != nil {
				readErr <- fmt.Errorf("fast client, message %d: %w", i, err)
				return
			}
			var p struct {
				I   int    `json:"i"`
				Pad string `json:"pad"`
			}
			if w.Type != TypeData || json.Unmarshal(w.Payload, &p) != nil || p.I != i || len(p.Pad) != size {
				readErr <- fmt.Errorf("fast client: message %d is %.200s", i, w.raw)
				return
			}
			got.Add(1)
		}
		readErr <- nil
	}()

	pad := strings.Repeat("x", size)
	pubErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for i := 0; i < total; i++ {
			msg, err := NewMessage(TypeData, json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad)))
			if err != nil {
				pubErr <- err
				return
			}
			if err := ts.m.Publish(context.Background(), "firehose", msg); err != nil {
				pubErr <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			// Keep the fast client within half its queue, so that only the slow one overflows.
			for got.Load() < int64(i+1-queue/2) {
				select {
				case <-stop:
					pubErr <- errors.New("stopped")
					return
				case <-time.After(50 * time.Microsecond):
				}
			}
		}
		pubErr <- nil
	}()

	deadline := time.After(90 * time.Second)
	for pending := 2; pending > 0; pending-- {
		select {
		case err := <-pubErr:
			if err != nil {
				close(stop)
				t.Fatal(err)
			}
		case err := <-readErr:
			if err != nil {
				close(stop)
				t.Fatal(err)
			}
		case <-deadline:
			close(stop)
			t.Fatalf("publishing did not finish (Publish blocked?); fast client read %d of %d", got.Load(), total)
		}
	}

	if reason := gone.waitCode(t, slowID, CloseTryAgainLater); !strings.Contains(reason, "slow consumer") {
		t.Errorf("slow consumer closed with reason %q", reason)
	}
	if n := ts.m.Stats().SlowConsumers; n < 1 {
		t.Errorf("Stats().SlowConsumers = %d, want at least 1", n)
	}
	if codes, _ := gone.get(fastID); len(codes) != 0 {
		t.Fatalf("the fast client was disconnected: %v", codes)
	}
	if c := ts.m.Conn(fastID); c == nil || c.State() != StateConnected {
		t.Fatalf("fast client's connection: %v", c)
	}
	bcQuiet(t, fast, "end")
	if ts.m.Conn(slowID) != nil {
		t.Fatalf("the slow connection is still registered")
	}
	if st := ts.m.Stats(); st.Subscriptions != 1 {
		t.Fatalf("Stats().Subscriptions = %d after the slow consumer left, want 1", st.Subscriptions)
	}
}

func TestConnRatePerIP(t *testing.T) {
	ts := startServer(t, Config{
		ConnRatePerIP:  1,
		ConnBurstPerIP: 3,
		ClientIP: func(r *http.Request) string {
			if ip := r.Header.Get("X-Test-Client"); ip != "" {
				return ip
			}
			return remoteIP(r)
		},
	})
	from := func(ip string) dialOpts { return dialOpts{header: http.Header{"X-Test-Client": {ip}}} }

	for i := 0; i < 3; i++ {
		bcConnect(t, ts.dial(from("192.0.2.1")))
	}
	_, resp, err := ts.tryDial(from("192.0.2.1"))
	if err == nil {
		t.Fatal("the 4th immediate connection from one IP was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th connection: %v, response %+v; want HTTP 429", err, resp)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("429 without Retry-After")
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("429 Content-Type %q", ct)
	}
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != string(CodeRateLimited) || body.Message == "" {
		t.Errorf("429 body: %+v, %v", body, err)
	}

	// Another IP has its own budget, and the limited IP's connections live on.
	for i := 0; i < 3; i++ {
		bcConnect(t, ts.dial(from("192.0.2.2")))
	}
	if st := ts.m.Stats(); st.Connections != 6 || st.Rejected != 1 {
		t.Fatalf("Stats: %d connections, %d rejected; want 6 and 1", st.Connections, st.Rejected)
	}
}

func TestMaxConnsPerUserDefault(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	const max = 32 // the documented default
	if got := ts.m.Config().MaxConnsPerUser; got != max {
		t.Fatalf("default MaxConnsPerUser = %d, want %d", got, max)
	}
	var tabs []*client
	for i := 0; i < max; i++ {
		tabs = append(tabs, bcDialUser(t, ts, "alice"))
	}
	// One more with a handshake token is refused before the upgrade.
	_, resp, err := ts.tryDial(dialOpts{query: "token=" + token(t, "alice", time.Hour)})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("connection %d of one user: %v %+v, want HTTP 429", max+1, err, resp)
	}
	// One more authenticating by message is refused with AUTHENTICATE_FAILURE.
	late := ts.dial()
	if r := late.authenticate(token(t, "alice", time.Hour)); r.Type != TypeAuthenticateFailure || r.field("reason") != "too_many_connections" {
		t.Fatalf("AUTHENTICATE over the cap: %s", r.raw)
	}
	// Other users are not affected.
	bcDialUser(t, ts, "bob")

	// A tab that leaves makes room.
	_ = tabs[0].ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "alice's tab to leave", func() bool { return len(ts.m.UserConns("alice")) == max-1 })
	if r := late.authenticate(token(t, "alice", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("AUTHENTICATE after a tab left: %s", r.raw)
	}
}

func TestMaxConnsPerUserUnlimited(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), MaxConnsPerUser: -1})
	for i := 0; i < 40; i++ {
		bcDialUser(t, ts, "alice")
	}
	if n := len(ts.m.UserConns("alice")); n != 40 {
		t.Fatalf("UserConns = %d, want 40", n)
	}
}

func TestMaxMessageSizeDefault(t *testing.T) {
	var gone limDisconnects
	ts := startServer(t, Config{OnDisconnect: gone.hook})
	if got := ts.m.Config().MaxMessageSize; got != 64<<10 {
		t.Fatalf("default MaxMessageSize = %d, want 64 KiB", got)
	}
	big := func(size int, id string) []byte {
		head := fmt.Sprintf(`{"type":"PING","id":%q,"payload":{"pad":"`, id)
		tail := `"}}`
		return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
	}

	c := ts.dial()
	c.send(big(60<<10, "fits"))
	if w := c.expect(TypePong); w.CorrelationID != "fits" {
		t.Fatalf("60 KiB message: %s", w.raw)
	}

	id := bcConnect(t, c)
	// The server stops reading at the limit and closes; the rest of the frame may still be on
	// its way, and the write may then fail with a connection reset (the server does not drain
	// it), so write in the background and watch for the close frame.
	wrote := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		wrote <- c.ws.Write(ctx, websocket.MessageText, big(70<<10, "too-big"))
	}()
	code, _, frames := c.closed()
	<-wrote
	if code != websocket.StatusMessageTooBig {
		t.Fatalf("70 KiB message: close %d (frames %v), want 1009", code, frames)
	}
	gone.waitCode(t, id, CloseMessageTooBig)
}

// TestKeepalive: a client that reads but never sends is closed with 1008 "pong timeout"; one
// that answers each PING stays connected.
func TestKeepalive(t *testing.T) {
	cfg := func(gone *limDisconnects) Config {
		return Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond, OnDisconnect: gone.hook}
	}

	t.Run("silent", func(t *testing.T) {
		var gone limDisconnects
		ts := startServer(t, cfg(&gone))
		c := ts.dial()
		id := bcConnect(t, c) // the last thing it sends
		pings := 0
		for {
			w, err := c.tryRead(10 * time.Second)
			if err != nil {
				var ce websocket.CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("waiting for the close: %v", err)
				}
				if ce.Code != websocket.StatusPolicyViolation || ce.Reason != "pong timeout" {
					t.Fatalf("closed with %d %q, want 1008 \"pong timeout\"", ce.Code, ce.Reason)
				}
				break
			}
			if w.Type != TypePing || w.ID == "" {
				t.Fatalf("unexpected frame %s", w.raw)
			}
			pings++
		}
		if pings == 0 {
			t.Fatal("closed without a PING first")
		}
		gone.waitCode(t, id, ClosePolicyViolation)
	})

	t.Run("answering", func(t *testing.T) {
		var gone limDisconnects
		ts := startServer(t, cfg(&gone))
		c := ts.dial()
		id := bcConnect(t, c)
		pings := 0
		// Read PINGs for 2 s. Each read waits for the next PING (due every 100ms); a read
		// that timed out would close the coder/websocket client, so none is allowed to.
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			w := c.read()
			if w.Type != TypePing || w.ID == "" {
				t.Fatalf("unexpected frame %s", w.raw)
			}
			pings++
			c.send(map[string]any{"type": TypePong, "id": fmt.Sprintf("pong-%d", pings), "correlation_id": w.ID})
		}
		if pings < 2 {
			t.Fatalf("%d PINGs in 2 s with PingInterval 100ms", pings)
		}
		bcQuiet(t, c, "still-there")
		if conn := ts.m.Conn(id); conn == nil || !conn.State().Live() {
			t.Fatalf("the answering client was disconnected")
		}
		if codes, reason := gone.get(id); len(codes) != 0 {
			t.Fatalf("OnDisconnect %v %q for the answering client", codes, reason)
		}
	})
}

// TestWriteTimeout: with an unbounded queue, a client that stops reading is closed (1013)
// once a write to its socket has been stuck for WriteTimeout.
func TestWriteTimeout(t *testing.T) {
	var gone limDisconnects
	ts := startServer(t, Config{SendQueueSize: -1, WriteTimeout: 200 * time.Millisecond, OnDisconnect: gone.hook})
	c := limDialSmallBuffer(t, ts)
	id := bcConnect(t, c)
	if r := c.subscribe("firehose"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("%s", r.raw)
	}
	// From here on the client never reads: about 10 MB is more than the socket buffers hold.
	pad := strings.Repeat("x", 16<<10)
	for i := 0; i < 640 && ts.m.Conn(id) != nil; i++ {
		msg, err := NewMessage(TypeData, json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad)))
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.m.Publish(context.Background(), "firehose", msg); err != nil {
			t.Fatal(err)
		}
	}
	if reason := gone.waitCode(t, id, CloseTryAgainLater); reason != "write timeout" {
		t.Fatalf("closed with reason %q, want \"write timeout\"", reason)
	}
	if n := ts.m.Stats().SlowConsumers; n != 1 {
		t.Fatalf("Stats().SlowConsumers = %d, want 1", n)
	}
}
