package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard/auth"
)

// Config is what one load test does.
type Config struct {
	Target string // targetSwitchboard or targetFloor
	URL    string // the server's base URL, http://host:port
	Mode   string // idle, throughput, latency, storm

	Conns     int    // client connections
	SourceIPs int    // source addresses to spread them over (0: enough for Conns)
	FirstIP   string // the first source address
	Topic     string

	Token     string // Switchboard: the JWT every client authenticates with
	JWTSecret string // Switchboard: mint the token with this HMAC secret instead
	User      string // the token's user when minted
	APIKey    string // Switchboard: the API key of POST /api/publish

	ServerPID       int           // for RSS and CPU figures (0: not measured)
	Duration        time.Duration // publishing time in throughput and latency modes
	Window          int           // throughput: publications in flight at most
	Rate            float64       // latency: publications per second
	PayloadSize     int           // bytes of each published payload
	Settle          time.Duration // idle: wait before reading the server's RSS
	DialConcurrency int           // connections being set up at once (storm: all)
	Timeout         time.Duration // the whole run
	StallTimeout    time.Duration // throughput/latency: give up when nothing completes this long
	Graceful        bool          // close connections with a close handshake at the end

	Subprotocol string // what clients offer: none, v1 or batch
	Compression string // what clients offer: off, no-context-takeover, context-takeover
	PayloadKind string // pad ("xxx…" filler) or records (an array of small, similar JSON objects)
}

// Result holds every figure of a run; the JSON form is what the matrix script reads.
type Result struct {
	Target       string `json:"target"`
	Mode         string `json:"mode"`
	Conns        int    `json:"conns"`
	SourceIPs    int    `json:"source_ips"`
	PayloadBytes int    `json:"payload_bytes"`
	Error        string `json:"error"` // "" when the run went as planned

	// What the clients offered and what the server chose (first ready client; "mixed"
	// when clients differ).
	PayloadKind        string `json:"payload_kind"`
	SubprotocolOffered string `json:"subprotocol_offered"` // none, v1, batch
	Subprotocol        string `json:"subprotocol"`         // negotiated; "" for none
	CompressionOffered string `json:"compression_offered"` // off, no-context-takeover, context-takeover
	CompressedConns    int    `json:"compressed_conns"`    // clients with permessage-deflate negotiated

	// Connect phase (every mode).
	Ready            int     `json:"ready"`              // clients subscribed
	Failed           int     `json:"failed"`             // clients that could not connect or subscribe
	ConnectS         float64 `json:"connect_s"`          // start → every WebSocket handshake done
	ReadyS           float64 `json:"ready_s"`            // start → every client subscribed
	ProbeS           float64 `json:"probe_s"`            // start → every client got a probe publication
	ConnectRate      float64 `json:"connect_rate"`       // conns / ready_s
	ServerCPUConnUS  float64 `json:"server_cpu_conn_us"` // server CPU per connection set up, µs
	DialConcurrency  int     `json:"dial_concurrency"`
	ServerRSSStartKB int64   `json:"server_rss_start_kb"`

	// Idle.
	ServerRSSEndKB int64   `json:"server_rss_end_kb"`
	RSSPerConnKB   float64 `json:"rss_per_conn_kb"`
	LoadgenRSSKB   int64   `json:"loadgen_rss_kb"`

	// Throughput and latency.
	Window          int     `json:"window"`
	Rate            float64 `json:"rate"`
	DurationS       float64 `json:"duration_s"` // first publication → last delivery
	Published       int64   `json:"published"`  // publications the server accepted
	PublishErrors   int64   `json:"publish_errors"`
	Skipped         int64   `json:"skipped"` // latency: ticks with every publisher busy
	Expected        int64   `json:"expected"`
	Received        int64   `json:"received"`
	Lost            int64   `json:"lost"`
	ClientsWithLoss int     `json:"clients_with_loss"`
	ClientsClosed   int     `json:"clients_closed"`
	ClientErrors    int64   `json:"client_errors"`
	Stalled         bool    `json:"stalled"`
	PubsPerS        float64 `json:"pubs_per_s"`
	MsgsPerS        float64 `json:"msgs_per_s"`         // deliveries: publications × subscribers per second
	FrameBytes      float64 `json:"frame_bytes"`        // mean envelope size (uncompressed)
	Frames          int64   `json:"frames"`             // WebSocket messages read in the publishing phase
	MsgsPerFrame    float64 `json:"msgs_per_frame"`     // envelopes per message (batching; ≈1 otherwise)
	WireBytesIn     int64   `json:"wire_bytes_in"`      // bytes the clients read from their sockets in the publishing phase
	WireBytesPerMsg float64 `json:"wire_bytes_per_msg"` // wire_bytes_in / received: framing and compression included
	ServerCPUCores  float64 `json:"server_cpu_cores"`
	LoadgenCPUCores float64 `json:"loadgen_cpu_cores"`
	OtherCPUCores   float64 `json:"other_cpu_cores"`   // the rest of the machine: other programs, unattributed kernel work
	ServerCPUMsgUS  float64 `json:"server_cpu_msg_us"` // server CPU per delivered message, µs
	P50MS           float64 `json:"p50_ms"`
	P90MS           float64 `json:"p90_ms"`
	P99MS           float64 `json:"p99_ms"`
	MaxMS           float64 `json:"max_ms"`
	Samples         int64   `json:"samples"`
}

// slot tracks one publication in flight: how many subscribers got it.
type slot struct {
	seq atomic.Int64
	n   atomic.Int64
}

const ringSize = 1 << 16

type runner struct {
	cfg         Config
	subprotocol string // offered in Sec-WebSocket-Protocol; "" for none
	compression websocket.CompressionMode

	wsURL string
	pub   string // publish URL
	token string
	dial  *dialers
	http  *http.Client

	clients []*client
	ready   []*client
	nReady  atomic.Int64 // len(ready), read by the client goroutines

	ring      []slot
	slots     chan struct{} // window tokens, returned on completion
	completed atomic.Int64
	lastDone  atomic.Int64 // unix nanoseconds of the last completion
	probes    atomic.Int64 // clients that have seen a probe
	latency   *histogram
	closing   atomic.Bool
	errs      errFirst
}

func (r *runner) noteError(err error) { r.errs.note(err) }

// newRunner checks cfg and prepares the run.
func newRunner(cfg Config) (*runner, error) {
	if cfg.Target != targetSwitchboard && cfg.Target != targetFloor {
		return nil, fmt.Errorf("--target must be %s or %s", targetSwitchboard, targetFloor)
	}
	switch cfg.Mode {
	case "idle", "throughput", "latency", "storm":
	default:
		return nil, fmt.Errorf("--mode must be idle, throughput, latency or storm, not %q", cfg.Mode)
	}
	if cfg.Conns < 1 {
		return nil, errors.New("--conns must be at least 1")
	}
	if cfg.PayloadSize < 64 {
		return nil, errors.New("--payload-size must be at least 64 bytes (sequence number and timestamp)")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url must be http://host:port, not %q", cfg.URL)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--url must point at a loopback address (127.0.0.0/8), not %q: load tests stay on this machine", u.Host)
	}
	first := net.ParseIP(cfg.FirstIP)
	if first == nil || !first.IsLoopback() {
		return nil, fmt.Errorf("--first-ip must be a loopback address, not %q", cfg.FirstIP)
	}
	if cfg.SourceIPs <= 0 {
		cfg.SourceIPs = defaultSourceIPs(cfg.Conns)
	}
	if cfg.DialConcurrency <= 0 || cfg.Mode == "storm" {
		cfg.DialConcurrency = cfg.Conns
	}
	if cfg.Window < 1 {
		cfg.Window = 1
	}
	if cfg.Window > ringSize/4 {
		cfg.Window = ringSize / 4
	}
	if cfg.Mode == "latency" && cfg.Rate <= 0 {
		return nil, errors.New("--rate must be positive in latency mode")
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 10 * time.Second
	}
	var subprotocol string
	switch cfg.Subprotocol {
	case "", "none":
		cfg.Subprotocol = "none"
	case "v1":
		subprotocol = subprotocolV1
	case "batch":
		subprotocol = subprotocolBatch
	default:
		return nil, fmt.Errorf("--subprotocol must be none, v1 or batch, not %q", cfg.Subprotocol)
	}
	compression := websocket.CompressionDisabled
	switch cfg.Compression {
	case "", "off":
		cfg.Compression = "off"
	case "no-context-takeover":
		compression = websocket.CompressionNoContextTakeover
	case "context-takeover":
		compression = websocket.CompressionContextTakeover
	default:
		return nil, fmt.Errorf("--compression must be off, no-context-takeover or context-takeover, not %q", cfg.Compression)
	}
	switch cfg.PayloadKind {
	case "":
		cfg.PayloadKind = "pad"
	case "pad", "records":
	default:
		return nil, fmt.Errorf("--payload-kind must be pad or records, not %q", cfg.PayloadKind)
	}

	r := &runner{cfg: cfg, subprotocol: subprotocol, compression: compression, ring: make([]slot, ringSize), latency: &histogram{},
		slots: make(chan struct{}, cfg.Window)}
	for i := range r.ring {
		r.ring[i].seq.Store(-1)
	}
	ws := *u
	ws.Scheme = "ws"
	if u.Scheme == "https" {
		ws.Scheme = "wss"
	}
	ws.Path = "/ws"
	r.wsURL = ws.String()
	switch cfg.Target {
	case targetSwitchboard:
		r.pub = strings.TrimSuffix(cfg.URL, "/") + "/api/publish"
		r.token = cfg.Token
		if r.token == "" {
			if cfg.JWTSecret == "" {
				return nil, errors.New("switchboard target: give --token or --jwt-secret")
			}
			t, err := auth.NewHMACToken([]byte(cfg.JWTSecret), cfg.User, 2*time.Hour, nil)
			if err != nil {
				return nil, err
			}
			r.token = t
		}
	case targetFloor:
		r.pub = strings.TrimSuffix(cfg.URL, "/") + "/publish?topic=" + url.QueryEscape(cfg.Topic)
	}
	r.dial, err = newDialers(first, cfg.SourceIPs)
	if err != nil {
		return nil, err
	}
	conns := max(cfg.Window, 8)
	r.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}}
	return r, nil
}

// defaultSourceIPs spreads connections 5,000 to a source address: well inside the
// ephemeral-port range (28,232 ports by default), even with ports of earlier runs still
// in TIME_WAIT or a kernel that ignores IP_BIND_ADDRESS_NO_PORT.
func defaultSourceIPs(conns int) int { return max(1, (conns+4999)/5000) }

// run executes the configured mode.
func (r *runner) run(ctx context.Context) *Result {
	cfg := r.cfg
	res := &Result{Target: cfg.Target, Mode: cfg.Mode, Conns: cfg.Conns, SourceIPs: cfg.SourceIPs,
		PayloadBytes: cfg.PayloadSize, DialConcurrency: cfg.DialConcurrency, PayloadKind: cfg.PayloadKind,
		SubprotocolOffered: cfg.Subprotocol, CompressionOffered: cfg.Compression}
	defer r.dial.close()
	defer r.http.CloseIdleConnections()

	if err := r.waitServer(ctx); err != nil {
		res.Error = err.Error()
		return res
	}
	if cfg.ServerPID > 0 {
		rss, err := readRSSKB(cfg.ServerPID)
		if err != nil {
			res.Error = fmt.Sprintf("reading the server's RSS: %v", err)
			return res
		}
		res.ServerRSSStartKB = rss
	}
	err := r.connect(ctx, res)
	if err == nil {
		switch cfg.Mode {
		case "idle":
			err = r.idle(ctx, res)
		case "throughput":
			err = r.publishRun(ctx, res, false)
		case "latency":
			err = r.publishRun(ctx, res, true)
		case "storm":
			// Nothing after the connect phase: its figures are the result.
		}
	}
	if err != nil {
		res.Error = err.Error()
	} else if first, _ := r.errs.get(); first != nil && res.Error == "" {
		res.Error = first.Error()
	}
	_, res.ClientErrors = r.errs.get()
	return res
}

// finish closes the connections, bounded by a few seconds.
func (r *runner) finish() {
	r.closing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closeAll(ctx, r.clients, r.cfg.Graceful)
}

// waitServer polls the server's port until it accepts connections (at most 15 s).
func (r *runner) waitServer(ctx context.Context) error {
	u, _ := url.Parse(r.cfg.URL)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server at %s not reachable: %w", u.Host, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect opens every connection, at most DialConcurrency at once, and waits until all
// are subscribed, then until every client has received a probe publication (for the
// floor, the only proof that its subscription is registered).
func (r *runner) connect(ctx context.Context, res *Result) error {
	cfg := r.cfg
	r.clients = make([]*client, cfg.Conns)
	for i := range r.clients {
		r.clients[i] = &client{id: i, r: r}
	}
	cpu := startCPU(cfg.ServerPID)
	start := time.Now()
	sem := make(chan struct{}, cfg.DialConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	var firstErr error
dial:
	for _, c := range r.clients {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dial // the clients being set up fail with ctx too
		}
		wg.Add(1)
		go func(c *client) {
			defer wg.Done()
			err := c.setup(ctx, start)
			<-sem
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("client %d: %w", c.id, err)
				}
				mu.Unlock()
				if c.conn != nil {
					_ = c.conn.CloseNow()
				}
				return
			}
			go c.readLoop()
		}(c)
	}
	wg.Wait()
	cpu.stop()
	for _, c := range r.clients {
		if c.readyAt > 0 {
			r.ready = append(r.ready, c)
			res.ConnectS = math.Max(res.ConnectS, c.connectedAt.Seconds())
			res.ReadyS = math.Max(res.ReadyS, c.readyAt.Seconds())
		}
	}
	r.nReady.Store(int64(len(r.ready)))
	res.Ready, res.Failed = len(r.ready), failed
	for i, c := range r.ready {
		if i == 0 {
			res.Subprotocol = c.subprotocol
		} else if c.subprotocol != res.Subprotocol {
			res.Subprotocol = "mixed"
		}
		if c.compressed {
			res.CompressedConns++
		}
	}
	if res.ReadyS > 0 {
		res.ConnectRate = float64(res.Ready) / res.ReadyS
	}
	if cpu.serverOK && res.Ready > 0 {
		res.ServerCPUConnUS = float64(cpu.serverUsed.Microseconds()) / float64(res.Ready)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("connect phase cut short by --timeout: %d of %d clients ready", res.Ready, cfg.Conns)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d clients failed to connect; first: %w", failed, cfg.Conns, firstErr)
	}

	// Probe: publish seq -1 until every client has one.
	probeDeadline := time.Now().Add(10*time.Second + time.Duration(cfg.Conns)*time.Millisecond)
	for r.probes.Load() < r.nReady.Load() {
		if time.Now().After(probeDeadline) {
			return fmt.Errorf("probe: only %d of %d clients received a publication", r.probes.Load(), r.nReady.Load())
		}
		if err := r.publish(ctx, -1); err != nil {
			return fmt.Errorf("probe publication: %w", err)
		}
		wait := time.Now().Add(200 * time.Millisecond)
		for r.probes.Load() < r.nReady.Load() && time.Now().Before(wait) {
			time.Sleep(2 * time.Millisecond)
		}
	}
	res.ProbeS = time.Since(start).Seconds()
	return nil
}

// idle lets the connections sit, then reads the server's memory.
func (r *runner) idle(ctx context.Context, res *Result) error {
	select {
	case <-time.After(r.cfg.Settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	res.LoadgenRSSKB, _ = readRSSKB(0)
	res.ClientsClosed = r.countClosed()
	if r.cfg.ServerPID <= 0 {
		return nil
	}
	rss, err := readRSSKB(r.cfg.ServerPID)
	if err != nil {
		return fmt.Errorf("reading the server's RSS: %w", err)
	}
	res.ServerRSSEndKB = rss
	res.RSSPerConnKB = float64(rss-res.ServerRSSStartKB) / float64(res.Ready)
	return nil
}

func (r *runner) countClosed() int {
	n := 0
	for _, c := range r.ready {
		if c.closed.Load() {
			n++
		}
	}
	return n
}

// payload builds the published payload: a JSON object of exactly PayloadSize bytes.
func (r *runner) payload(seq int64, ts int64) []byte {
	b := make([]byte, 0, r.cfg.PayloadSize)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	if r.cfg.PayloadKind == "records" {
		b = appendRecords(b, seq, r.cfg.PayloadSize-10)
	}
	b = append(b, `,"pad":"`...)
	for len(b) < r.cfg.PayloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

var recordStatus = [...]string{"in_stock", "backorder", "discontinued", "in_stock"}

// appendRecords appends `,"items":[…]` to b: records shaped alike (same keys, similar
// values, varying with seq) as long as b stays within limit bytes, like a typical JSON
// API payload. It is what permessage-deflate is good at.
func appendRecords(b []byte, seq int64, limit int) []byte {
	if len(b)+len(`,"items":[]`) > limit {
		return b // too small a payload for records: filler only
	}
	b = append(b, `,"items":[`...)
	open := len(b)
	var rec []byte
	for i := int64(0); ; i++ {
		h := uint64(seq)*0x9E3779B97F4A7C15 + uint64(i)*0xBF58476D1CE4E5B9
		h ^= h >> 31
		rec = rec[:0]
		if len(b) > open {
			rec = append(rec, ',')
		}
		rec = append(rec, `{"id":`...)
		rec = strconv.AppendInt(rec, 1000+i, 10)
		rec = append(rec, `,"sku":"SKU-`...)
		rec = strconv.AppendInt(rec, 10000+int64(h%90000), 10)
		rec = append(rec, `","price":`...)
		rec = strconv.AppendInt(rec, int64(h>>20%10000), 10)
		rec = append(rec, `,"qty":`...)
		rec = strconv.AppendInt(rec, int64(h>>40%100), 10)
		rec = append(rec, `,"status":"`...)
		rec = append(rec, recordStatus[h>>50%4]...)
		rec = append(rec, `"}`...)
		if len(b)+len(rec)+1 > limit {
			break
		}
		b = append(b, rec...)
	}
	return append(b, ']')
}

// publish sends one publication through the server's HTTP API.
func (r *runner) publish(ctx context.Context, seq int64) error {
	ts := time.Now().UnixNano()
	p := r.payload(seq, ts)
	var body []byte
	if r.cfg.Target == targetSwitchboard {
		body = make([]byte, 0, len(p)+64)
		body = append(body, `{"topic":`...)
		body = strconv.AppendQuote(body, r.cfg.Topic)
		body = append(body, `,"type":"DATA","payload":`...)
		body = append(body, p...)
		body = append(body, '}')
	} else {
		body = p
	}
	if seq >= 0 {
		s := &r.ring[seq&(ringSize-1)]
		s.n.Store(0)
		s.seq.Store(seq)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.pub, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // all of it: the connection is reused
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// delivered is called by a client for each publication it receives.
func (r *runner) delivered(c *client, seq, ts int64, size int, now time.Time) {
	if seq < 0 {
		if c.probed.CompareAndSwap(false, true) {
			r.probes.Add(1)
		}
		return
	}
	c.received.Add(1)
	c.bytes.Add(int64(size))
	r.latency.record(time.Duration(now.UnixNano() - ts))
	s := &r.ring[seq&(ringSize-1)]
	if s.seq.Load() == seq && s.n.Add(1) == r.nReady.Load() {
		r.completed.Add(1)
		r.lastDone.Store(now.UnixNano())
		r.release()
	}
}

// release returns a window token (throughput mode); with the window full (latency mode,
// where nobody takes tokens) it does nothing.
func (r *runner) release() {
	select {
	case r.slots <- struct{}{}:
	default:
	}
}

// publishRun publishes for Duration: flat out within the window (throughput) or at a fixed
// rate (latency), then waits for the last deliveries and computes the figures.
func (r *runner) publishRun(ctx context.Context, res *Result, fixedRate bool) error {
	cfg := r.cfg
	// Only this phase counts (probes are not counted anyway).
	for _, c := range r.ready {
		c.received.Store(0)
		c.bytes.Store(0)
		c.frames.Store(0)
	}
	wire0 := r.dial.wireIn.Load()
	var published, pubErrs, skipped atomic.Int64
	var seq atomic.Int64
	seq.Store(-1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stalled atomic.Bool

	cpu := startCPU(cfg.ServerPID)
	start := time.Now()
	post := func() {
		s := seq.Add(1)
		if err := r.publish(ctx, s); err != nil {
			pubErrs.Add(1)
			r.noteError(err)
			r.ring[s&(ringSize-1)].seq.Store(-1) // never completes; free its window token
			r.release()
			return
		}
		published.Add(1)
	}

	if fixedRate {
		res.Rate = cfg.Rate
		jobs := make(chan struct{}, 1)
		workers := max(4, int(math.Ceil(cfg.Rate/100)))
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					post()
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		t := time.NewTicker(interval)
		end := time.After(cfg.Duration)
	loop:
		for {
			select {
			case <-t.C:
				select {
				case jobs <- struct{}{}:
				default:
					skipped.Add(1) // every publisher busy: the rate is beyond what the server takes
				}
			case <-end:
				break loop
			case <-ctx.Done():
				break loop
			}
		}
		t.Stop()
		close(jobs)
		wg.Wait()
	} else {
		res.Window = cfg.Window
		for range cfg.Window {
			r.release()
		}
		for range cfg.Window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					case <-r.slots:
					}
					select {
					case <-stop:
						return
					default:
					}
					post()
				}
			}()
		}
		// Watch for the end of the run and for stalls.
		end := time.After(cfg.Duration)
		tick := time.NewTicker(100 * time.Millisecond)
		lastCount, lastMove := int64(0), time.Now()
	watch:
		for {
			select {
			case <-end:
				break watch
			case <-ctx.Done():
				break watch
			case <-tick.C:
				if n := r.completed.Load(); n != lastCount {
					lastCount, lastMove = n, time.Now()
				} else if time.Since(lastMove) > cfg.StallTimeout {
					stalled.Store(true)
					break watch
				}
			}
		}
		tick.Stop()
		close(stop)
		wg.Wait()
	}

	// Drain: wait until every accepted publication is complete, or the stall timeout.
	drainEnd := time.Now().Add(cfg.StallTimeout)
	for r.completed.Load() < published.Load() && time.Now().Before(drainEnd) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if r.completed.Load() < published.Load() {
		stalled.Store(true)
	}
	end := time.Now()
	if ld := r.lastDone.Load(); ld > 0 && r.completed.Load() == published.Load() {
		end = time.Unix(0, ld)
	}
	cpu.stop()
	wall := end.Sub(start)
	if wall <= 0 {
		wall = time.Nanosecond
	}

	res.Published, res.PublishErrors, res.Skipped = published.Load(), pubErrs.Load(), skipped.Load()
	res.Expected = res.Published * int64(len(r.ready))
	var bytesIn int64
	res.WireBytesIn = r.dial.wireIn.Load() - wire0
	for _, c := range r.ready {
		n := c.received.Load()
		res.Received += n
		res.Frames += c.frames.Load()
		bytesIn += c.bytes.Load()
		if n < res.Published {
			res.ClientsWithLoss++
			res.Lost += res.Published - n
		}
	}
	res.ClientsClosed = r.countClosed()
	res.Stalled = stalled.Load()
	res.DurationS = wall.Seconds()
	res.PubsPerS = float64(r.completed.Load()) / wall.Seconds()
	res.MsgsPerS = float64(res.Received) / wall.Seconds()
	if res.Received > 0 {
		res.FrameBytes = float64(bytesIn) / float64(res.Received)
		res.WireBytesPerMsg = float64(res.WireBytesIn) / float64(res.Received)
	}
	if res.Frames > 0 {
		res.MsgsPerFrame = float64(res.Received) / float64(res.Frames)
	}
	cpuWall := cpu.wall.Seconds()
	if cpu.serverOK {
		res.ServerCPUCores = cpu.serverUsed.Seconds() / cpuWall
		if res.Received > 0 {
			res.ServerCPUMsgUS = float64(cpu.serverUsed.Microseconds()) / float64(res.Received)
		}
	}
	res.LoadgenCPUCores = cpu.selfUsed.Seconds() / cpuWall
	res.OtherCPUCores = cpu.otherCores()
	h := r.latency
	res.Samples = h.total.Load()
	res.P50MS = ms(h.quantile(0.50))
	res.P90MS = ms(h.quantile(0.90))
	res.P99MS = ms(h.quantile(0.99))
	res.MaxMS = float64(h.max.Load()) / 1000

	switch {
	case ctx.Err() != nil:
		return errors.New("run cut short by --timeout; the figures are partial")
	case res.Stalled:
		return fmt.Errorf("%w (%d of %d publications complete)", errStalled, r.completed.Load(), res.Published)
	case res.Lost > 0:
		return fmt.Errorf("%d messages lost across %d clients", res.Lost, res.ClientsWithLoss)
	case res.PublishErrors > 0:
		first, _ := r.errs.get()
		return fmt.Errorf("%d publications failed; first error: %v", res.PublishErrors, first)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
