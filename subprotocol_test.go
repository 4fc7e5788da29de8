package switchboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// spDialOpts are the handshake options of spDial.
type spDialOpts struct {
	path         string // e.g. "/ws2"; default the server's own URL
	subprotocols []string
	compression  websocket.CompressionMode
	counter      *spCounter // counts the bytes the client reads off the network
}

// spCounter counts the bytes read from a client's TCP connection.
type spCounter struct{ n atomic.Int64 }

func (c *spCounter) load() int64 { return c.n.Load() }

type spCountingConn struct {
	net.Conn
	cnt *spCounter
}

func (c *spCountingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.cnt.n.Add(int64(n))
	return n, err
}

// spDial dials ts with subprotocols and compression; the response is returned on failure
// too (with its body readable, as the library keeps up to 1 KiB of it).
func spDial(ts *testServer, o spDialOpts) (*client, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := ts.url
	if o.path != "" {
		u = "ws" + strings.TrimPrefix(ts.srv.URL, "http") + o.path
	}
	opts := &websocket.DialOptions{Subprotocols: o.subprotocols, CompressionMode: o.compression}
	if o.counter != nil {
		d := &net.Dialer{}
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &spCountingConn{Conn: nc, cnt: o.counter}, nil
		}}
		ts.t.Cleanup(tr.CloseIdleConnections)
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	ws, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(-1)
	ts.t.Cleanup(func() { _ = ws.CloseNow() })
	return &client{t: ts.t, ws: ws}, resp, nil
}

func spMustDial(t testing.TB, ts *testServer, o spDialOpts) (*client, *http.Response) {
	t.Helper()
	c, resp, err := spDial(ts, o)
	if err != nil {
		t.Fatalf("dial %v: %v", o.subprotocols, err)
	}
	return c, resp
}

// spStart is startServer with extra endpoints of the same manager (path → config).
func spStart(t testing.TB, cfg Config, paths map[string]EndpointConfig) *testServer {
	t.Helper()
	base := runtime.NumGoroutine()
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = -1
	}
	m := New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	for p, ec := range paths {
		mux.Handle(p, m.Endpoint(ec))
	}
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

// spReadFrame returns the next data frame's bytes, failing the test after 5 s.
func spReadFrame(c *client) []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("frame type %v: %q", typ, b)
	}
	return b
}

// spSplit decodes a frame of a batching connection: one JSON object, or several
// newline-separated ones. Every envelope must be a valid JSON object.
func spSplit(t testing.TB, frame []byte) []wire {
	t.Helper()
	var parts [][]byte
	if json.Valid(frame) {
		parts = [][]byte{frame}
	} else {
		parts = bytes.Split(frame, []byte("\n"))
	}
	out := make([]wire, 0, len(parts))
	for _, p := range parts {
		var w wire
		if err := json.Unmarshal(p, &w); err != nil {
			t.Fatalf("envelope %q of frame %q is not a JSON object: %v", p, frame, err)
		}
		if w.Type == "" {
			t.Fatalf("envelope %q of frame %q has no type", p, frame)
		}
		w.raw = p
		out = append(out, w)
	}
	return out
}

// spReadOne reads a frame that must hold exactly one JSON object.
func spReadOne(t testing.TB, c *client) wire {
	t.Helper()
	f := spReadFrame(c)
	var w wire
	if err := json.Unmarshal(f, &w); err != nil {
		t.Fatalf("frame %q is not one JSON object: %v", f, err)
	}
	w.raw = f
	return w
}

// spRequest sends {type, payload, id} and returns the reply carrying that correlation_id,
// reading batched frames too. Server PINGs are skipped; anything else fails the test.
func spRequest(t testing.TB, c *client, typ string, payload any, id string) wire {
	t.Helper()
	c.send(map[string]any{"type": typ, "payload": payload, "id": id})
	for {
		for _, w := range spSplit(t, spReadFrame(c)) {
			if w.CorrelationID == id {
				return w
			}
			if w.Type != TypePing {
				t.Fatalf("waiting for reply to %s: got %s", id, w.raw)
			}
		}
	}
}

// spConn sends CONNECT and returns the server side of the connection.
func spConn(t testing.TB, ts *testServer, c *client) *Conn {
	t.Helper()
	ack := spRequest(t, c, TypeConnect, nil, "sp-connect")
	id, _ := ack.field("client_id").(string)
	conn := ts.m.Conn(id)
	if ack.Type != TypeConnectAck || conn == nil {
		t.Fatalf("CONNECT answered with %s (conn %v)", ack.raw, conn)
	}
	return conn
}

func spSubscribe(t testing.TB, c *client, topic string) {
	t.Helper()
	if w := spRequest(t, c, TypeSubscribe, map[string]any{"subscriptions": []string{topic}}, "sp-sub-"+topic); w.Type != TypeSubscribeSuccess {
		t.Fatalf("SUBSCRIBE %s: %s", topic, w.raw)
	}
}

// spHoldWriter keeps c's writer from running: it waits until no writer is active and marks
// one as running, so enqueue only queues. The returned release starts the writer on what
// has been queued (the WaitGroup accounting is enqueue's); it also runs at cleanup.
func spHoldWriter(t testing.TB, c *Conn) (release func()) {
	t.Helper()
	waitFor(t, "the writer to go idle", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.writing || c.closeReq {
			return false
		}
		c.writing = true
		return true
	})
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		c.mu.Lock()
		c.m.wg.Add(1) // under mu while the read loop is alive, as enqueue does
		c.mu.Unlock()
		go c.writeLoop()
	}
	t.Cleanup(release)
	return release
}

func spQueued(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// spPublishN publishes n messages {"n": i} (i from first) to topic; pad adds a "pad"
// string of that many bytes.
func spPublishN(t testing.TB, ts *testServer, topic string, first, n, pad int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		p := map[string]any{"n": i}
		if pad > 0 {
			p["pad"] = strings.Repeat("x", pad)
		}
		msg, err := NewMessage(TypeEvent, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.m.Publish(context.Background(), topic, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// spReadEnvelopes reads frames until n envelopes have arrived; it returns them and the
// frames they came in.
func spReadEnvelopes(t testing.TB, c *client, n int) ([]wire, [][]byte) {
	t.Helper()
	var ws []wire
	var frames [][]byte
	for len(ws) < n {
		f := spReadFrame(c)
		frames = append(frames, f)
		ws = append(ws, spSplit(t, f)...)
	}
	if len(ws) != n {
		t.Fatalf("got %d envelopes, want %d (frames %q)", len(ws), n, frames)
	}
	return ws, frames
}

func spCheckSeq(t testing.TB, ws []wire, topic string, first int) {
	t.Helper()
	for i, w := range ws {
		if w.Type != TypeEvent || w.Topic != topic {
			t.Fatalf("envelope %d: %s", i, w.raw)
		}
		if n, _ := w.field("n").(float64); int(n) != first+i {
			t.Fatalf("envelope %d has n=%v, want %d: %s", i, w.field("n"), first+i, w.raw)
		}
	}
}

func TestSubprotocolNegotiation(t *testing.T) {
	ts := spStart(t, Config{}, map[string]EndpointConfig{"/strict": {RequireSubprotocol: true}})

	cases := []struct {
		name   string
		offer  []string
		want   string
		batch  bool
		strict bool
	}{
		{"batch", []string{SubprotocolV1Batch}, SubprotocolV1Batch, true, false},
		{"v1", []string{SubprotocolV1}, SubprotocolV1, false, false},
		{"none", nil, "", false, false},
		{"unknown only", []string{"unknown.proto"}, "", false, false},
		{"unknown then v1", []string{"unknown", SubprotocolV1}, SubprotocolV1, false, false},
		{"both, server prefers batch", []string{SubprotocolV1, SubprotocolV1Batch}, SubprotocolV1Batch, true, false},
		{"strict v1", []string{SubprotocolV1}, SubprotocolV1, false, true},
	}
	want := map[string]int{}
	for _, tc := range cases {
		o := spDialOpts{subprotocols: tc.offer}
		if tc.strict {
			o.path = "/strict"
		}
		c, _ := spMustDial(t, ts, o)
		if got := c.ws.Subprotocol(); got != tc.want {
			t.Errorf("%s: client sees subprotocol %q, want %q", tc.name, got, tc.want)
		}
		conn := spConn(t, ts, c)
		if got := conn.Subprotocol(); got != tc.want {
			t.Errorf("%s: server sees subprotocol %q, want %q", tc.name, got, tc.want)
		}
		if conn.Batching() != tc.batch {
			t.Errorf("%s: Batching() = %v, want %v", tc.name, conn.Batching(), tc.batch)
		}
		// Every connection speaks v1: a PING is answered with one PONG in one frame.
		c.send(`{"type":"PING","id":"p-` + tc.name + `"}`)
		if w := spReadOne(t, c); w.Type != TypePong || w.CorrelationID != "p-"+tc.name {
			t.Errorf("%s: PING answered with %s", tc.name, w.raw)
		}
		want[tc.want]++
	}

	// The strict endpoint refuses a client offering none (or only unknown ones).
	for _, offer := range [][]string{nil, {"unknown.proto"}} {
		_, resp, err := spDial(ts, spDialOpts{path: "/strict", subprotocols: offer})
		if err == nil {
			t.Fatalf("strict endpoint accepted a client offering %v", offer)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("strict endpoint, offer %v: response %v, want 400 (%v)", offer, resp, err)
		}
		var body struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &body); err != nil || body.Error != "subprotocol_required" {
			t.Fatalf("strict endpoint, offer %v: body %q, want error subprotocol_required", offer, b)
		}
	}

	if got := ts.m.SubprotocolCounts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("SubprotocolCounts = %v, want %v", got, want)
	}
}

func TestSubprotocolCountsFollowDisconnects(t *testing.T) {
	ts := startServer(t, Config{})
	b, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	spConn(t, ts, b)
	v, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1}})
	vc := spConn(t, ts, v)
	if got := ts.m.SubprotocolCounts(); got[SubprotocolV1Batch] != 1 || got[SubprotocolV1] != 1 || len(got) != 2 {
		t.Fatalf("SubprotocolCounts = %v", got)
	}
	_ = v.ws.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, "the v1 connection to go", func() bool { return vc.State() == StateDisconnected })
	if got := ts.m.SubprotocolCounts(); got[SubprotocolV1Batch] != 1 || got[SubprotocolV1] != 0 || len(got) != 1 {
		t.Fatalf("after disconnect, SubprotocolCounts = %v", got)
	}
}

func TestBatchPlainAndBatchOnSameTopic(t *testing.T) {
	ts := startServer(t, Config{})
	const topic = "sp.news"
	bc, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	bconn := spConn(t, ts, bc)
	pc, _ := spMustDial(t, ts, spDialOpts{})
	pconn := spConn(t, ts, pc)
	if !bconn.Batching() || pconn.Batching() {
		t.Fatalf("Batching: batch client %v, plain client %v", bconn.Batching(), pconn.Batching())
	}
	spSubscribe(t, bc, topic)
	spSubscribe(t, pc, topic)

	release := spHoldWriter(t, bconn)
	spPublishN(t, ts, topic, 0, 10, 0)
	if n := spQueued(bconn); n != 10 {
		t.Fatalf("%d frames queued for the held batch client, want 10", n)
	}

	// The plain client: ten frames, each exactly one JSON object, in order.
	var plain []wire
	for i := 0; i < 10; i++ {
		w := spReadOne(t, pc)
		if bytes.IndexByte(w.raw, '\n') >= 0 {
			t.Fatalf("plain frame holds a newline: %q", w.raw)
		}
		plain = append(plain, w)
	}
	spCheckSeq(t, plain, topic, 0)

	release()
	got, frames := spReadEnvelopes(t, bc, 10)
	spCheckSeq(t, got, topic, 0)
	if len(frames) >= 10 {
		t.Fatalf("batch client got %d frames for 10 messages", len(frames))
	}
	multi := false
	for _, f := range frames {
		if bytes.Count(f, []byte("\n")) >= 1 {
			multi = true
		}
	}
	if !multi {
		t.Fatalf("no frame holds several envelopes: %q", frames)
	}
	// The batched envelopes are the very frames the plain client got.
	for i := range got {
		if !bytes.Equal(got[i].raw, plain[i].raw) {
			t.Fatalf("envelope %d differs: batch %s, plain %s", i, got[i].raw, plain[i].raw)
		}
	}

	// A single queued message goes out as one frame holding one envelope.
	spPublishN(t, ts, topic, 100, 1, 0)
	w := spReadOne(t, bc)
	if bytes.IndexByte(w.raw, '\n') >= 0 {
		t.Fatalf("single message frame holds a newline: %q", w.raw)
	}
	spCheckSeq(t, []wire{w}, topic, 100)
	spCheckSeq(t, []wire{spReadOne(t, pc)}, topic, 100)
}

func TestBatchMaxMessages(t *testing.T) {
	ts := startServer(t, Config{BatchMaxMessages: 3})
	const topic = "sp.max"
	bc, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	bconn := spConn(t, ts, bc)
	spSubscribe(t, bc, topic)

	release := spHoldWriter(t, bconn)
	spPublishN(t, ts, topic, 0, 10, 0)
	release()
	got, frames := spReadEnvelopes(t, bc, 10)
	spCheckSeq(t, got, topic, 0)
	full := false
	for _, f := range frames {
		n := len(spSplit(t, f))
		if n > 3 {
			t.Fatalf("frame holds %d envelopes, BatchMaxMessages is 3: %q", n, f)
		}
		full = full || n == 3
	}
	if !full || len(frames) != 4 {
		t.Fatalf("10 messages came in %d frames (want 4, with full batches of 3)", len(frames))
	}
}

func TestBatchMaxBytes(t *testing.T) {
	const maxBytes = 700
	ts := startServer(t, Config{BatchMaxBytes: maxBytes})
	const topic = "sp.bytes"
	bc, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	bconn := spConn(t, ts, bc)
	spSubscribe(t, bc, topic)

	release := spHoldWriter(t, bconn)
	spPublishN(t, ts, topic, 0, 5, 150)        // ~250 bytes each: two fit in a batch
	spPublishN(t, ts, topic, 5, 1, 2*maxBytes) // larger than the cap: alone
	spPublishN(t, ts, topic, 6, 5, 150)
	release()
	got, frames := spReadEnvelopes(t, bc, 11)
	spCheckSeq(t, got, topic, 0)
	multi := false
	for _, f := range frames {
		env := spSplit(t, f)
		if len(env) > 1 {
			multi = true
			if len(f) > maxBytes {
				t.Fatalf("batched frame of %d envelopes is %d bytes, BatchMaxBytes is %d", len(env), len(f), maxBytes)
			}
		}
		for _, w := range env {
			if n, _ := w.field("n").(float64); n == 5 && len(env) != 1 {
				t.Fatalf("the oversized message was batched with %d others", len(env)-1)
			}
		}
	}
	if !multi {
		t.Fatalf("no frame was batched: %d frames", len(frames))
	}
}

func TestBatchPayloadWithNewlineGoesAlone(t *testing.T) {
	ts := startServer(t, Config{})
	const topic = "sp.nl"
	bc, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	bconn := spConn(t, ts, bc)
	spSubscribe(t, bc, topic)

	raw := json.RawMessage("{\n\"a\": 1}")
	release := spHoldWriter(t, bconn)
	spPublishN(t, ts, topic, 0, 2, 0)
	if err := ts.m.Publish(context.Background(), topic, &Message{Type: TypeData, Payload: raw}); err != nil {
		t.Fatal(err)
	}
	spPublishN(t, ts, topic, 2, 3, 0)
	release()

	var got []wire
	var special []byte
	for len(got) < 6 {
		f := spReadFrame(bc)
		env := spSplit(t, f)
		for _, w := range env {
			if w.Type == TypeData {
				if len(env) != 1 || !bytes.Equal(w.raw, f) {
					t.Fatalf("the newline message shares its frame: %q", f)
				}
				special = f
			}
		}
		got = append(got, env...)
	}
	if special == nil || !bytes.Contains(special, raw) {
		t.Fatalf("newline payload not delivered intact: %q", special)
	}
	var w wire
	if err := json.Unmarshal(special, &w); err != nil || w.field("a") != 1.0 || w.Topic != topic {
		t.Fatalf("newline message decoded as %+v (%v)", w, err)
	}
	var rest []wire
	for i, w := range got {
		if i == 2 {
			if w.Type != TypeData {
				t.Fatalf("message 2 is %s, want the DATA message", w.raw)
			}
			continue
		}
		rest = append(rest, w)
	}
	spCheckSeq(t, rest, topic, 0)
}

func TestBatchInbound(t *testing.T) {
	ts := startServer(t, Config{})
	frame := `{"type":"PING","id":"b1"}` + "\n" + `{"type":"PING","id":"b2"}`

	bc, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	bc.send(frame)
	got, _ := spReadEnvelopes(t, bc, 2)
	for i, id := range []string{"b1", "b2"} {
		if got[i].Type != TypePong || got[i].CorrelationID != id {
			t.Fatalf("reply %d to the batch: %s", i, got[i].raw)
		}
	}

	// Without the batch subprotocol the frame is not one JSON object: bad_message.
	for _, offer := range [][]string{{SubprotocolV1}, nil} {
		c, _ := spMustDial(t, ts, spDialOpts{subprotocols: offer})
		c.send(frame)
		w := spReadOne(t, c)
		if w.Type != TypeError || w.field("code") != string(CodeBadMessage) {
			t.Fatalf("offer %v: the batch frame was answered with %s, want ERROR bad_message", offer, w.raw)
		}
		// Nothing of the batch was handled: the next reply is to the next PING.
		c.send(`{"type":"PING","id":"after"}`)
		if w := spReadOne(t, c); w.Type != TypePong || w.CorrelationID != "after" {
			t.Fatalf("offer %v: after the batch frame got %s", offer, w.raw)
		}
	}
}

func TestBatchInboundRateLimit(t *testing.T) {
	// A burst of 5 and a refill too slow to matter within the test: exactly 5 of the 8
	// envelopes pass, whatever the scheduling.
	ts := startServer(t, Config{MessageRate: 0.01, MessageBurst: 5})
	bc, _ := spMustDial(t, ts, spDialOpts{subprotocols: []string{SubprotocolV1Batch}})
	var lines []string
	for i := 1; i <= 8; i++ {
		lines = append(lines, fmt.Sprintf(`{"type":"PING","id":"r%d"}`, i))
	}
	bc.send(strings.Join(lines, "\n"))
	got, _ := spReadEnvelopes(t, bc, 8)
	pongs, limited := 0, 0
	for _, w := range got {
		switch {
		case w.Type == TypePong:
			pongs++
			if want := fmt.Sprintf("r%d", pongs); w.CorrelationID != want {
				t.Fatalf("PONG %d answers %q, want %q", pongs, w.CorrelationID, want)
			}
		case w.Type == TypeError && w.field("code") == string(CodeRateLimited):
			limited++
		default:
			t.Fatalf("unexpected reply %s", w.raw)
		}
	}
	if pongs != 5 || limited != 3 {
		t.Fatalf("8 PINGs in one frame: %d PONGs and %d rate_limited, want 5 and 3", pongs, limited)
	}
}

// spCompressionCase publishes repetitive 2 KiB messages to a client dialing with clientMode
// and to one without compression: both must decode the same bytes. wantDeflate is whether
// permessage-deflate is negotiated, noTakeover whether the server declares
// server_no_context_takeover, compressed whether the messages are smaller on the wire.
func spCompressionCase(t *testing.T, cfg Config, clientMode websocket.CompressionMode, wantDeflate, noTakeover, compressed bool) {
	ts := startServer(t, cfg)
	const topic = "sp.zip"
	var zc, pcnt spCounter
	z, zresp := spMustDial(t, ts, spDialOpts{compression: clientMode, counter: &zc})
	p, presp := spMustDial(t, ts, spDialOpts{compression: websocket.CompressionDisabled, counter: &pcnt})
	if ext := zresp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(ext, "permessage-deflate") != wantDeflate {
		t.Fatalf("compressing client: extensions %q, want deflate %v", ext, wantDeflate)
	} else if strings.Contains(ext, "server_no_context_takeover") != noTakeover {
		t.Fatalf("compressing client: extensions %q, want server_no_context_takeover %v", ext, noTakeover)
	}
	if ext := presp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("plain client: extensions %q", ext)
	}
	spSubscribe(t, z, topic)
	spSubscribe(t, p, topic)

	z0, p0 := zc.load(), pcnt.load()
	const n = 5
	raw := 0
	for i := 0; i < n; i++ {
		text := strings.Repeat(fmt.Sprintf("switchboard %d ", i), 2048/14)
		msg, err := NewMessage(TypeEvent, map[string]any{"n": i, "text": text})
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.m.Publish(context.Background(), topic, msg); err != nil {
			t.Fatal(err)
		}
		a, b := spReadOne(t, z), spReadOne(t, p)
		if !bytes.Equal(a.raw, b.raw) {
			t.Fatalf("message %d differs:\ncompressed %q\nplain      %q", i, a.raw, b.raw)
		}
		if a.field("text") != text || a.field("n") != float64(i) {
			t.Fatalf("message %d decoded wrongly: %.80s", i, a.raw)
		}
		raw += len(a.raw)
	}
	zn, pn := zc.load()-z0, pcnt.load()-p0
	if pn < int64(raw) {
		t.Fatalf("plain client read %d bytes for %d bytes of messages", pn, raw)
	}
	if compressed && zn*2 > pn {
		t.Fatalf("compressing client read %d bytes, plain client %d: not compressed", zn, pn)
	}
	if !compressed && zn < int64(raw) {
		t.Fatalf("no compression expected, yet the client read %d bytes for %d bytes of messages", zn, raw)
	}

	// The compressing client's own messages are understood too.
	z.send(`{"type":"PING","id":"zp","payload":{"pad":"` + strings.Repeat("ab", 1024) + `"}}`)
	if w := spReadOne(t, z); w.Type != TypePong || w.CorrelationID != "zp" {
		t.Fatalf("PING from the compressing client answered with %s", w.raw)
	}
}

func TestCompressionContextTakeover(t *testing.T) {
	spCompressionCase(t, Config{Compression: CompressionContextTakeover}, websocket.CompressionContextTakeover, true, false, true)
}

func TestCompressionNoContextTakeover(t *testing.T) {
	spCompressionCase(t, Config{Compression: CompressionNoContextTakeover}, websocket.CompressionNoContextTakeover, true, true, true)
}

// A server without context takeover says so even to a client that would keep its window.
func TestCompressionNoContextTakeoverClientWantsTakeover(t *testing.T) {
	spCompressionCase(t, Config{Compression: CompressionNoContextTakeover}, websocket.CompressionContextTakeover, true, true, true)
}

func TestCompressionOffClientOffers(t *testing.T) {
	spCompressionCase(t, Config{}, websocket.CompressionContextTakeover, false, false, false)
}

// Messages under CompressionThreshold go out uncompressed, deflate negotiated or not.
func TestCompressionThreshold(t *testing.T) {
	spCompressionCase(t, Config{Compression: CompressionContextTakeover, CompressionThreshold: 1 << 20},
		websocket.CompressionContextTakeover, true, false, false)
}

func TestCompressionBomb(t *testing.T) {
	ts := startServer(t, Config{Compression: CompressionNoContextTakeover, MaxMessageSize: 64 << 10})
	const topic = "sp.after"
	other, _ := spMustDial(t, ts, spDialOpts{})
	spSubscribe(t, other, topic)
	bomb, resp := spMustDial(t, ts, spDialOpts{compression: websocket.CompressionNoContextTakeover})
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("compression not negotiated: %q", ext)
	}
	bconn := spConn(t, ts, bomb)

	zeros := make([]byte, 10<<20)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The server may close before the client has written it all; the close code matters.
	_ = bomb.ws.Write(ctx, websocket.MessageText, zeros)
	var err error
	for err == nil {
		_, _, err = bomb.ws.Read(ctx)
	}
	if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
		t.Fatalf("bomb: read ended with %v (code %d), want close 1009", err, code)
	}
	waitFor(t, "the bomb connection to be unregistered", func() bool { return bconn.State() == StateDisconnected })

	runtime.ReadMemStats(&after)
	// Inflating the whole 10 MiB (io.ReadAll grows its buffer several times) would allocate
	// far more than this; reading up to the 64 KiB limit allocates a few hundred KiB.
	t.Logf("allocated %d KiB while the bomb was read", (after.TotalAlloc-before.TotalAlloc)>>10)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("the process allocated %d MiB while the bomb was read", grew>>20)
	}
	runtime.KeepAlive(zeros)

	spPublishN(t, ts, topic, 0, 3, 0)
	for i := 0; i < 3; i++ {
		spCheckSeq(t, []wire{spReadOne(t, other)}, topic, i)
	}
}
