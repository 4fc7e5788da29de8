package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Targets.
const (
	targetSwitchboard = "switchboard"
	targetFloor       = "floor"
)

// Subprotocols the clients may offer (--subprotocol).
const (
	subprotocolV1    = "switchboard.v1"
	subprotocolBatch = "switchboard.v1.batch"
)

// client is one simulated subscriber: one WebSocket connection and the goroutine reading it.
type client struct {
	id   int
	r    *runner
	conn *websocket.Conn

	received atomic.Int64 // publications with seq ≥ 0
	bytes    atomic.Int64 // their envelope sizes
	frames   atomic.Int64 // WebSocket messages read (a batched frame carries several envelopes)
	batch    bool         // switchboard.v1.batch negotiated: split frames on "\n"
	probed   atomic.Bool  // a probe publication (seq < 0) has arrived
	closed   atomic.Bool  // the connection ended before the runner closed it
	ctlErrs  atomic.Int64 // ERROR/DISCONNECT frames and unparsable frames after setup

	subprotocol string // negotiated (Sec-WebSocket-Protocol of the response; "" for none)
	compressed  bool   // permessage-deflate negotiated

	connectedAt time.Duration // since the start of the connect phase: WebSocket handshake done
	readyAt     time.Duration // subscribed (switchboard: SUBSCRIBE_SUCCESS; floor: topic sent)
}

// control is the part of a Switchboard envelope the load generator looks at.
type control struct {
	Type          string          `json:"type"`
	ID            string          `json:"id"`
	CorrelationID string          `json:"correlation_id"`
	Payload       json.RawMessage `json:"payload"`
}

// dialers hands out one HTTP client per source address; the WebSocket handshake goes
// through it and the upgraded connection keeps that source address.
type dialers struct {
	clients []*http.Client
	ips     []net.IP
	// wireIn counts the bytes read from every WebSocket connection's socket: frame
	// headers, (compressed) payloads, control frames and the handshake response.
	wireIn atomic.Int64
}

// countingConn counts the bytes read from a connection's socket.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func newDialers(first net.IP, n int) (*dialers, error) {
	ip4 := first.To4()
	if ip4 == nil {
		return nil, fmt.Errorf("source address %s is not IPv4", first)
	}
	if n < 1 {
		n = 1
	}
	d := &dialers{}
	base := uint32(ip4[0])<<24 | uint32(ip4[1])<<16 | uint32(ip4[2])<<8 | uint32(ip4[3])
	for i := 0; i < n; i++ {
		v := base + uint32(i)
		ip := net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("source address %s is outside 127.0.0.0/8", ip)
		}
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 30 * time.Second, Control: bindNoPort}
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: conn, n: &d.wireIn}, nil
		}
		tr := &http.Transport{DialContext: dial, ForceAttemptHTTP2: false}
		d.clients = append(d.clients, &http.Client{Transport: tr})
		d.ips = append(d.ips, ip)
	}
	return d, nil
}

func (d *dialers) forClient(i int) *http.Client { return d.clients[i%len(d.clients)] }

func (d *dialers) close() {
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}

// setup dials the server and subscribes to the topic; it returns once the client is
// ready (or failed). start is the beginning of the connect phase.
func (c *client) setup(ctx context.Context, start time.Time) error {
	r := c.r
	opts := &websocket.DialOptions{HTTPClient: r.dial.forClient(c.id), CompressionMode: r.compression}
	if r.subprotocol != "" {
		opts.Subprotocols = []string{r.subprotocol}
	}
	conn, resp, err := websocket.Dial(ctx, r.wsURL, opts)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c.subprotocol = conn.Subprotocol()
	c.batch = c.subprotocol == subprotocolBatch
	if resp != nil {
		c.compressed = strings.Contains(strings.ToLower(resp.Header.Get("Sec-WebSocket-Extensions")), "permessage-deflate")
	}
	conn.SetReadLimit(1 << 20)
	c.conn = conn
	c.connectedAt = time.Since(start)

	switch r.cfg.Target {
	case targetFloor:
		if err := conn.Write(ctx, websocket.MessageText, []byte(r.cfg.Topic)); err != nil {
			return fmt.Errorf("sending topic: %w", err)
		}
	case targetSwitchboard:
		auth, _ := json.Marshal(map[string]any{"type": "AUTHENTICATE", "id": "auth",
			"payload": map[string]any{"auth": map[string]string{"token": r.token}}})
		if err := c.request(ctx, auth, "auth", "AUTHENTICATE_SUCCESS"); err != nil {
			return err
		}
		sub, _ := json.Marshal(map[string]any{"type": "SUBSCRIBE", "id": "sub",
			"payload": map[string]any{"subscriptions": []string{r.cfg.Topic}}})
		if err := c.request(ctx, sub, "sub", "SUBSCRIBE_SUCCESS"); err != nil {
			return err
		}
	}
	c.readyAt = time.Since(start)
	return nil
}

// request sends a control message and waits for the reply correlated with id, answering
// server PINGs meanwhile. A reply of another type than want is an error.
func (c *client) request(ctx context.Context, msg []byte, id, want string) error {
	if err := c.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("sending %s: %w", id, err)
	}
	for {
		_, frame, err := c.conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", want, err)
		}
		var m control
		if err := json.Unmarshal(frame, &m); err != nil {
			return fmt.Errorf("waiting for %s: bad frame %.80q", want, frame)
		}
		switch {
		case m.Type == "PING":
			c.pong(ctx, m.ID)
		case m.CorrelationID == id && m.Type == want:
			return nil
		case m.CorrelationID == id:
			return fmt.Errorf("got %s %s instead of %s", m.Type, m.Payload, want)
		case m.Type == "ERROR" || m.Type == "DISCONNECT":
			return fmt.Errorf("got %s %s while waiting for %s", m.Type, m.Payload, want)
		}
	}
}

func (c *client) pong(ctx context.Context, pingID string) {
	b, _ := json.Marshal(map[string]any{"type": "PONG", "correlation_id": pingID})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = c.conn.Write(wctx, websocket.MessageText, b)
	cancel()
}

// readLoop reads frames until the connection ends.
func (c *client) readLoop() {
	buf := make([]byte, 0, 4096)
	for {
		_, rd, err := c.conn.Reader(context.Background())
		if err != nil {
			if !c.r.closing.Load() {
				c.closed.Store(true)
				c.r.noteError(fmt.Errorf("client %d: connection ended: %w", c.id, err))
			}
			return
		}
		buf, err = readInto(buf[:0], rd)
		if err != nil {
			continue // the next Reader call reports the broken connection
		}
		c.frames.Add(1)
		if !c.batch {
			c.handle(buf)
			continue
		}
		// switchboard.v1.batch: one envelope per line; each counts as a delivery.
		for rest := buf; len(rest) > 0; {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if len(line) > 0 {
				c.handle(line)
			}
		}
	}
}

func readInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

var (
	seqKey = []byte(`"seq":`)
	tsKey  = []byte(`"ts":`)
)

// handle processes one frame: a publication (its payload carries "seq" and "ts") or,
// from Switchboard, a control message.
func (c *client) handle(frame []byte) {
	now := time.Now()
	seq, ok1 := jsonInt(frame, seqKey)
	ts, ok2 := jsonInt(frame, tsKey)
	if ok1 && ok2 {
		c.r.delivered(c, seq, ts, len(frame), now)
		return
	}
	if c.r.cfg.Target == targetSwitchboard {
		var m control
		if json.Unmarshal(frame, &m) == nil {
			switch m.Type {
			case "PING":
				c.pong(context.Background(), m.ID)
				return
			case "PONG":
				return
			case "ERROR", "DISCONNECT":
				c.ctlErrs.Add(1)
				c.r.noteError(fmt.Errorf("client %d: %s %s", c.id, m.Type, m.Payload))
				return
			}
		}
	}
	c.ctlErrs.Add(1)
	c.r.noteError(fmt.Errorf("client %d: unexpected frame %.100q", c.id, frame))
}

// jsonInt finds key in b and parses the integer after it. It is enough for the payloads
// the load generator itself writes (compact JSON, keys unique in the frame).
func jsonInt(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	i += len(key)
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	return v, err == nil
}

// closeAll closes every connection with 1000 (Switchboard: DISCONNECT first), waiting at
// most until ctx ends.
func closeAll(ctx context.Context, clients []*client, graceful bool) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	bye := []byte(`{"type":"DISCONNECT","payload":{"code":1000,"reason":"load test done"}}`)
	for _, c := range clients {
		if c.conn == nil {
			continue
		}
		if !graceful {
			_ = c.conn.CloseNow()
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			_ = c.conn.CloseNow()
			continue
		}
		wg.Add(1)
		go func(c *client) {
			defer wg.Done()
			defer func() { <-sem }()
			if c.r.cfg.Target == targetSwitchboard {
				wctx, cancel := context.WithTimeout(ctx, time.Second)
				_ = c.conn.Write(wctx, websocket.MessageText, bye)
				cancel()
			}
			done := make(chan struct{})
			go func() { _ = c.conn.Close(websocket.StatusNormalClosure, "load test done"); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				_ = c.conn.CloseNow()
			}
		}(c)
	}
	wg.Wait()
}

// errFirst keeps the first error reported and counts the others.
type errFirst struct {
	mu    sync.Mutex
	first error
	n     int64
}

func (e *errFirst) note(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	if e.first == nil {
		e.first = err
	}
	e.n++
	e.mu.Unlock()
}

func (e *errFirst) get() (error, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.first, e.n
}

var errStalled = errors.New("no publication completed for the stall timeout: messages were lost or the server stopped delivering")
