//go:build linux

package switchboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The idle poller (idlepoll_linux.go) takes idle connections off their goroutines. These
// tests run many real connections through the states it handles: parked, woken by data,
// parked again, ended by the peer, by the server, and by Shutdown.

// parkedConns counts the connections whose read side is parked in the idle poller.
func parkedConns(m *Manager) int {
	n := 0
	m.reg.forEachConn(func(c *Conn) {
		c.mu.Lock()
		if c.parked {
			n++
		}
		c.mu.Unlock()
	})
	return n
}

// pollerSlots returns how many connections hold a slot in the idle poller.
func pollerSlots(m *Manager) int {
	if p := m.idlePoller(); p != nil {
		return p.registered()
	}
	return 0
}

// dialSubscribed opens n connections subscribed to topic.
func dialSubscribed(t *testing.T, ts *testServer, n int, topic string) []*client {
	t.Helper()
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = ts.dial()
		clients[i].subscribe(topic)
	}
	return clients
}

// An idle connection has no goroutine of its own: N idle connections add about none, where
// a goroutine per connection would add N. Without the poller (the waiter goroutines of
// other platforms) the same count grows by N, which shows that the count sees them.
func TestIdleConnectionsHaveNoGoroutine(t *testing.T) {
	const n = 200
	for _, poller := range []bool{true, false} {
		t.Run(fmt.Sprintf("poller=%v", poller), func(t *testing.T) {
			ts := startServer(t, Config{})
			if !poller {
				ts.m.idleOnce.Do(func() {}) // no idle poller for this manager
			}
			dialSubscribed(t, ts, 1, "warm") // starts the poller, if any
			waitFor(t, "the first connection to go idle", func() bool { return idleConns(ts.m, poller) == 1 })
			base := runtime.NumGoroutine()

			dialSubscribed(t, ts, n, "idle")
			waitFor(t, "the connections to go idle", func() bool { return idleConns(ts.m, poller) == n+1 })
			// The handshakes' own goroutines (net/http's, the clients') end shortly after:
			// wait, generously, for the count to fall below the bound.
			extra := runtime.NumGoroutine() - base
			for deadline := time.Now().Add(10 * time.Second); poller && extra >= n/4 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				extra = runtime.NumGoroutine() - base
			}
			if poller {
				if extra >= n/4 {
					t.Fatalf("%d idle connections added %d goroutines", n, extra)
				}
				if got := pollerSlots(ts.m); got != n+1 {
					t.Errorf("poller slots: %d, want %d", got, n+1)
				}
			} else if extra < n*9/10 {
				t.Fatalf("without the poller %d idle connections added only %d goroutines: the count does not see per-connection goroutines", n, extra)
			}
		})
	}
}

// idleConns counts the idle connections: those parked in the poller, or (without one) all,
// since their waiter goroutines cannot be observed directly.
func idleConns(m *Manager, poller bool) int {
	if poller {
		return parkedConns(m)
	}
	return m.Stats().Connections
}

// Parked connections wake for what their clients send and park again, many times over: each
// receives a publication after idling and answers a PING, twice.
func TestIdlePollerWakesParkedConnections(t *testing.T) {
	for _, poller := range []bool{true, false} {
		t.Run(fmt.Sprintf("poller=%v", poller), func(t *testing.T) {
			const n = 100
			ts := startServer(t, Config{})
			if !poller {
				ts.m.idleOnce.Do(func() {})
			}
			clients := dialSubscribed(t, ts, n, "news")
			for round := 0; round < 2; round++ {
				if poller {
					waitFor(t, "every connection to park", func() bool { return parkedConns(ts.m) == n })
				}
				if err := ts.m.Publish(context.Background(), "news", &Message{Type: "news", Payload: []byte(`{"round":1}`)}); err != nil {
					t.Fatal(err)
				}
				// Every client reads the publication and sends a PING before any reads its
				// PONG, so that many parked connections wake at about the same time.
				for i, c := range clients {
					if w := c.expect("news"); w.Topic != "news" {
						t.Fatalf("client %d: %s", i, w.raw)
					}
					c.send(map[string]any{"type": TypePing, "id": fmt.Sprintf("ping-%d-%d", round, i)})
				}
				for i, c := range clients {
					if w := c.expect(TypePong); w.CorrelationID != fmt.Sprintf("ping-%d-%d", round, i) {
						t.Fatalf("client %d: %s", i, w.raw)
					}
				}
			}
			if got := ts.m.Stats().Connections; got != n {
				t.Errorf("%d connections after the rounds, want %d", got, n)
			}
		})
	}
}

// A parked connection whose client goes away is noticed (the poller wakes it for the FIN),
// unregistered, and its slot released; new connections then reuse the slots.
func TestIdlePollerPeerCloseWhileParked(t *testing.T) {
	const n = 60
	var mu sync.Mutex
	codes := map[int]int{}
	ts := startServer(t, Config{OnDisconnect: func(_ *Conn, code int, _ string) {
		mu.Lock()
		codes[code]++
		mu.Unlock()
	}})
	clients := dialSubscribed(t, ts, n, "t")
	waitFor(t, "every connection to park", func() bool { return parkedConns(ts.m) == n })
	if got := pollerSlots(ts.m); got != n {
		t.Fatalf("poller slots: %d, want %d", got, n)
	}
	// A third vanish without a close frame, a third close properly, a third stay.
	for i, c := range clients[:2*n/3] {
		if i%2 == 0 {
			_ = c.ws.CloseNow()
		} else {
			go func() { _ = c.ws.Close(websocket.StatusNormalClosure, "bye") }()
		}
	}
	waitFor(t, "the closed connections to be unregistered", func() bool {
		return ts.m.Stats().Connections == n/3 && pollerSlots(ts.m) == n/3
	})
	mu.Lock()
	if codes[CloseNormal] != n/3 || codes[CloseAbnormal] != n/3 {
		t.Errorf("close codes seen by OnDisconnect: %v, want %d × 1000 and %d × 1006", codes, n/3, n/3)
	}
	mu.Unlock()

	// The survivors still work, and new connections take the released slots.
	for _, c := range clients[2*n/3:] {
		c.request(TypePing, map[string]any{}, "p")
	}
	dialSubscribed(t, ts, 2*n/3, "t")
	waitFor(t, "every connection to park", func() bool { return parkedConns(ts.m) == n })
	p := ts.m.idlePoller()
	p.mu.Lock()
	slots := len(p.slots)
	p.mu.Unlock()
	if slots != n {
		t.Errorf("the poller has %d slots for %d connections that never exceeded %d: released slots are not reused", slots, n, n)
	}
}

// The server ending a parked connection, gracefully or by closing its socket at once, ends
// it: the socket's close wakes the parked read side, which nothing else would.
func TestIdlePollerServerClosesParked(t *testing.T) {
	disconnected := make(chan int, 4)
	ts := startServer(t, Config{OnDisconnect: func(_ *Conn, code int, _ string) { disconnected <- code }})
	graceful := dialSubscribed(t, ts, 1, "a")[0]
	abrupt := dialSubscribed(t, ts, 1, "b")[0]
	waitFor(t, "both connections to park", func() bool { return parkedConns(ts.m) == 2 })

	var gc, ac *Conn
	ts.m.reg.forEachConn(func(c *Conn) {
		if contains(c.Subscriptions(), "a") {
			gc = c
		} else {
			ac = c
		}
	})

	gc.Close(4000, "bye")
	if code, reason, _ := graceful.closed(); code != 4000 || reason != "bye" {
		t.Errorf("graceful close: client saw %d %q", code, reason)
	}
	if code := <-disconnected; code != 4000 {
		t.Errorf("graceful close: OnDisconnect code %d", code)
	}

	ac.kill(CloseTryAgainLater, "write timeout") // what the sweeper does to a stalled writer
	select {
	case code := <-disconnected:
		if code != CloseTryAgainLater {
			t.Errorf("abrupt close: OnDisconnect code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a parked connection whose socket the server closed never ended")
	}
	if _, err := abrupt.tryRead(5 * time.Second); err == nil {
		t.Error("the client of the killed connection could still read")
	}
	waitFor(t, "the slots to be released", func() bool { return pollerSlots(ts.m) == 0 })
}

// Shutdown closes parked connections with 1001 and stops the poller's goroutine (the
// goroutine check of startServer also covers it).
func TestIdlePollerShutdown(t *testing.T) {
	const n = 50
	ts := startServer(t, Config{})
	clients := dialSubscribed(t, ts, n, "t")
	waitFor(t, "every connection to park", func() bool { return parkedConns(ts.m) == n })
	p := ts.m.idlePoller()

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.m.Shutdown(ctx)
	}()
	for i, c := range clients {
		if code, _, _ := c.closed(); code != CloseGoingAway {
			t.Errorf("client %d: close code %d, want 1001", i, code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("the poller's goroutine is still running after Shutdown")
	}
}

// A client that sends its first frames in the same packet as the upgrade request has them
// read ahead by net/http. They are handed on to the connection (which reads them before it
// ever parks), and the connection parks and wakes normally afterwards.
func TestFramesSentWithTheHandshake(t *testing.T) {
	ts := startServer(t, Config{})
	nc, err := net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET /ws HTTP/1.1\r\nHost: " + ts.srv.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	early := append([]byte(req), maskedFrame(`{"type":"PING","id":"early-1"}`)...)
	early = append(early, maskedFrame(`{"type":"SUBSCRIBE","id":"early-2","payload":{"subscriptions":["t"]}}`)...)
	if _, err := nc.Write(early); err != nil { // one write: one segment on loopback
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, id := range []string{"early-1", "early-2"} {
		if w := readFrame(t, br); w.CorrelationID != id {
			t.Fatalf("reply to %s: got %s", id, w.raw)
		}
	}
	var sc *Conn
	ts.m.reg.forEachConn(func(c *Conn) { sc = c })
	if !sc.prefixed {
		t.Fatal("net/http did not read ahead: the test did not exercise the read-ahead path")
	}
	waitFor(t, "the connection to park", func() bool { return parkedConns(ts.m) == 1 })
	if _, err := nc.Write(maskedFrame(`{"type":"PING","id":"late"}`)); err != nil {
		t.Fatal(err)
	}
	if w := readFrame(t, br); w.CorrelationID != "late" {
		t.Fatalf("reply to the PING after parking: got %s", w.raw)
	}
}

// maskedFrame is a client text frame (masked, as clients must) of less than 126 bytes.
func maskedFrame(s string) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | byte(len(s)), key[0], key[1], key[2], key[3]}
	for i := 0; i < len(s); i++ {
		f = append(f, s[i]^key[i%4])
	}
	return f
}

// readFrame reads one unfragmented server text frame of less than 64 KiB.
func readFrame(t *testing.T, br *bufio.Reader) wire {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			t.Fatal(err)
		}
		n = int(l[0])<<8 | int(l[1])
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatal(err)
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatalf("frame %q: %v", b, err)
	}
	w.raw = b
	return w
}

// Should waiting on the epoll instance ever fail, the poller wakes every parked connection
// and refuses new ones, which then wait in a goroutine each: nothing is left parked where
// nobody looks.
func TestIdlePollerFailureFallsBack(t *testing.T) {
	const n = 30
	ts := startServer(t, Config{})
	clients := dialSubscribed(t, ts, n, "t")
	waitFor(t, "every connection to park", func() bool { return parkedConns(ts.m) == n })
	p := ts.m.idlePoller()
	p.file.Close() // what a failing epoll_wait would do to the wait loop
	<-p.done
	if got := parkedConns(ts.m); got != 0 {
		t.Fatalf("%d connections still parked on a stopped poller", got)
	}
	for round := 0; round < 2; round++ {
		for i, c := range clients {
			id := fmt.Sprintf("ping-%d-%d", round, i)
			if w := c.request(TypePing, map[string]any{}, id); w.Type != TypePong {
				t.Fatalf("client %d: PING answered with %s", i, w.raw)
			}
		}
	}
	if got := parkedConns(ts.m); got != 0 {
		t.Errorf("%d connections parked on a stopped poller", got)
	}
}

// Compressed connections park and wake like the others, and what a context-takeover client
// compresses against its earlier messages still decodes after the connection has parked in
// between (the decompressor's window is the library's, kept across readers).
func TestIdlePollerCompressedConnections(t *testing.T) {
	for _, mode := range []struct {
		name   string
		server CompressionMode
		client websocket.CompressionMode
	}{
		{"no-context-takeover", CompressionNoContextTakeover, websocket.CompressionNoContextTakeover},
		{"context-takeover", CompressionContextTakeover, websocket.CompressionContextTakeover},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ts := startServer(t, Config{Compression: mode.server, CompressionThreshold: 64})
			c, _ := spMustDial(t, ts, spDialOpts{compression: mode.client})
			big := strings.Repeat("abcdefgh", 200) // well above every compression threshold
			for i := 0; i < 3; i++ {
				waitFor(t, "the connection to park", func() bool { return parkedConns(ts.m) == 1 })
				id := fmt.Sprintf("%s-%d", big, i)
				if w := c.request(TypePing, map[string]any{}, id); w.CorrelationID != id {
					t.Fatalf("round %d: got %.100s", i, w.raw)
				}
			}
		})
	}
}
