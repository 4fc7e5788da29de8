package metrics_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/metrics"
)

// waitLimit only bounds how long a broken test hangs; nothing is timed against it.
const waitLimit = 10 * time.Second

var discardLogger = slog.New(slog.DiscardHandler)

// fixture is a Manager with metrics behind an httptest server.
type fixture struct {
	reg *prometheus.Registry
	obs *metrics.Metrics
	m   *switchboard.Manager
	ts  *httptest.Server
}

// newFixture starts a Manager configured by cfg (with its Observer set to fresh metrics on
// a fresh registry, and watched) behind an httptest server.
func newFixture(tb testing.TB, cfg switchboard.Config, opts ...metrics.Option) *fixture {
	tb.Helper()
	reg := prometheus.NewRegistry()
	obs, err := metrics.New(reg, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Observer = obs
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = -1 // no server PINGs in the middle of exact counts
	}
	m := switchboard.New(cfg)
	obs.Watch(m)
	return &fixture{reg: reg, obs: obs, m: m, ts: serve(tb, m)}
}

// serve serves m on an httptest server until the test ends, then shuts both down.
func serve(tb testing.TB, m *switchboard.Manager) *httptest.Server {
	ts := httptest.NewServer(m)
	tb.Cleanup(ts.Close)
	tb.Cleanup(func() { // runs before ts.Close
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	return ts
}

func (f *fixture) wsURL() string { return "ws" + strings.TrimPrefix(f.ts.URL, "http") }

// value returns the value of the counter or gauge name with the given label pairs, or the
// sample count of a histogram; -1 when there is no such series.
func (f *fixture) value(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	return gatherValue(tb, f.reg, name, labels...)
}

func gatherValue(tb testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	tb.Helper()
	fams, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
	metric:
		for _, m := range fam.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// histogramSum returns the sum of the histogram name's series with the given label pair.
func (f *fixture) histogramSum(tb testing.TB, name, label, value string) float64 {
	tb.Helper()
	fams, err := f.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			if labelValue(m, label) == value {
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	return -1
}

// waitFor polls cond until it holds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// client is a raw WebSocket client of wire protocol v1 that keeps the size of every frame
// it sends and receives.
type client struct {
	tb        testing.TB
	ws        *websocket.Conn
	bytesSent int
	bytesRead int
}

func (f *fixture) dial(tb testing.TB) *client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, f.wsURL(), nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	tb.Cleanup(func() { _ = ws.CloseNow() })
	return &client{tb: tb, ws: ws}
}

// sendRaw writes one text frame.
func (c *client) sendRaw(frame string) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
	c.bytesSent += len(frame)
}

// send writes a message of type typ with the given id and payload.
func (c *client) send(typ, id string, payload any) {
	c.tb.Helper()
	frame, err := json.Marshal(map[string]any{"type": typ, "id": id, "payload": payload})
	if err != nil {
		c.tb.Fatal(err)
	}
	c.sendRaw(string(frame))
}

type wireMsg struct {
	Type          string          `json:"type"`
	CorrelationID string          `json:"correlation_id"`
	Payload       json.RawMessage `json:"payload"`
}

// read reads the next message.
func (c *client) read() wireMsg {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, frame, err := c.ws.Read(ctx)
	if err != nil {
		c.tb.Fatalf("read: %v", err)
	}
	c.bytesRead += len(frame)
	var m wireMsg
	if err := json.Unmarshal(frame, &m); err != nil {
		c.tb.Fatalf("frame is not JSON: %v: %s", err, frame)
	}
	return m
}

// expect reads the next message and checks its type.
func (c *client) expect(typ string) wireMsg {
	c.tb.Helper()
	m := c.read()
	if m.Type != typ {
		c.tb.Fatalf("got %s %s, want %s", m.Type, m.Payload, typ)
	}
	return m
}

// close closes the connection with code and waits for the close handshake.
func (c *client) close(code websocket.StatusCode) {
	c.tb.Helper()
	if err := c.ws.Close(code, "bye"); err != nil {
		c.tb.Fatalf("close: %v", err)
	}
}

// dialWithOrigin attempts a handshake with an Origin header and returns the HTTP status.
func (f *fixture) dialWithOrigin(tb testing.TB, origin string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, f.wsURL(), &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {origin}},
	})
	if err == nil {
		_ = ws.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if res == nil {
		tb.Fatalf("dial: %v", err)
	}
	return res.StatusCode
}
