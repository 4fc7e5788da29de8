package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/metrics"
)

// TestConnectionLifecycle runs a connection through pings, a bad frame, a subscription, a
// publication and a close, and checks every counter and gauge against what the client saw.
func TestConnectionLifecycle(t *testing.T) {
	f := newFixture(t, switchboard.Config{})
	c := f.dial(t)

	c.send(switchboard.TypePing, "p1", nil)
	c.expect(switchboard.TypePong)
	// The server registers the connection before it reads: after a PONG, it is counted.
	if got := f.value(t, "switchboard_connections_opened_total", "codec", "json"); got != 1 {
		t.Errorf("connections_opened_total{codec=json} = %v, want 1", got)
	}
	if got := f.value(t, "switchboard_connections", "state", "connected"); got != 1 {
		t.Errorf("connections{state=connected} = %v, want 1", got)
	}

	c.sendRaw("this is not JSON")
	c.expect(switchboard.TypeError)
	c.send(switchboard.TypeSubscribe, "s1", map[string]any{"subscriptions": []string{"news"}})
	c.expect(switchboard.TypeSubscribeSuccess)

	ev, err := switchboard.NewEvent("story", map[string]string{"title": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Publish(context.Background(), "news", ev); err != nil {
		t.Fatal(err)
	}
	c.expect(switchboard.TypeEvent)
	c.send(switchboard.TypePing, "p2", nil)
	c.expect(switchboard.TypePong)

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"switchboard_messages_in_total", []string{"type", "PING"}, 2},
		{"switchboard_messages_in_total", []string{"type", "invalid"}, 1},
		{"switchboard_messages_in_total", []string{"type", "SUBSCRIBE"}, 1},
		{"switchboard_messages_in_total", []string{"type", "other"}, 0},
		{"switchboard_bytes_in_total", nil, float64(c.bytesSent)},
		{"switchboard_messages_out_total", []string{"type", "PONG"}, 2},
		{"switchboard_messages_out_total", []string{"type", "ERROR"}, 1},
		{"switchboard_messages_out_total", []string{"type", "SUBSCRIBE_SUCCESS"}, 1},
		{"switchboard_messages_out_total", []string{"type", "EVENT"}, 1},
		{"switchboard_bytes_out_total", nil, float64(c.bytesRead)},
		{"switchboard_fanout_duration_seconds", []string{"target", "topic"}, 1},
		{"switchboard_fanout_duration_seconds", []string{"target", "all"}, 0},
		{"switchboard_fanout_recipients", []string{"target", "topic"}, 1},
		{"switchboard_topics", nil, 1},
		{"switchboard_subscriptions", nil, 1},
		{"switchboard_history_gaps_filled_total", nil, 0},
		{"switchboard_history_gaps_lost_total", nil, 0},
		{"switchboard_rate_limited_total", nil, 0},
		{"switchboard_handshakes_rejected_total", []string{"reason", "bad_handshake"}, 0},
	} {
		if got := f.value(t, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := f.histogramSum(t, "switchboard_fanout_recipients", "target", "topic"); got != 1 {
		t.Errorf("fanout_recipients{target=topic} sum = %v, want 1", got)
	}
	if got := f.histogramSum(t, "switchboard_fanout_duration_seconds", "target", "topic"); got <= 0 || got > 1 {
		t.Errorf("fanout_duration_seconds{target=topic} sum = %v, want a small positive time", got)
	}

	c.close(websocket.StatusNormalClosure)
	waitFor(t, "the connection to be unregistered", func() bool { return f.m.Stats().Connections == 0 })
	if got := f.value(t, "switchboard_connections_closed_total", "code", "1000"); got != 1 {
		t.Errorf("connections_closed_total{code=1000} = %v, want 1", got)
	}
	// Every state is exported, at 0 now.
	if n := testutil.CollectAndCount(f.obs, "switchboard_connections"); n != 8 {
		t.Errorf("%d switchboard_connections series, want one per state (8)", n)
	}
	err = testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP switchboard_connections Live WebSocket connections, by state.
# TYPE switchboard_connections gauge
switchboard_connections{state="authenticated"} 0
switchboard_connections{state="authenticating"} 0
switchboard_connections{state="connected"} 0
switchboard_connections{state="connecting"} 0
switchboard_connections{state="disconnected"} 0
switchboard_connections{state="disconnecting"} 0
switchboard_connections{state="error"} 0
switchboard_connections{state="initializing"} 0
# HELP switchboard_subscriptions Subscriptions, as (connection, topic) pairs, on this node.
# TYPE switchboard_subscriptions gauge
switchboard_subscriptions 0
# HELP switchboard_topics Topics with at least one subscriber on this node.
# TYPE switchboard_topics gauge
switchboard_topics 0
`), "switchboard_connections", "switchboard_topics", "switchboard_subscriptions")
	if err != nil {
		t.Error(err)
	}
}

func TestHandshakeRejectedAndAuthFailure(t *testing.T) {
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, switchboard.Config{Authenticator: jwt})

	if status := f.dialWithOrigin(t, "https://elsewhere.example"); status != 403 {
		t.Fatalf("foreign origin: status %d, want 403", status)
	}
	if got := f.value(t, "switchboard_handshakes_rejected_total", "reason", "bad_handshake"); got != 1 {
		t.Errorf("handshakes_rejected_total{reason=bad_handshake} = %v, want 1", got)
	}

	c := f.dial(t)
	c.send(switchboard.TypeAuthenticate, "a1", map[string]any{"auth": map[string]string{"token": "not-a-jwt"}})
	m := c.expect(switchboard.TypeAuthenticateFailure)
	total := 0.0
	for _, reason := range []string{"invalid", "expired", "malformed", "no_token"} {
		if v := f.value(t, "switchboard_auth_failures_total", "reason", reason); v > 0 {
			total += v
			if !strings.Contains(string(m.Payload), reason) {
				t.Errorf("auth_failures_total{reason=%s} = %v, but the client was told %s", reason, v, m.Payload)
			}
		}
	}
	if total != 1 {
		t.Errorf("auth_failures_total: %v in all, want 1", total)
	}
}

func TestRateLimited(t *testing.T) {
	f := newFixture(t, switchboard.Config{MessageRate: 0.001, MessageBurst: 2, RateLimitStrikes: -1})
	c := f.dial(t)
	const sent = 7
	for i := range sent {
		c.send(switchboard.TypePing, fmt.Sprint("p", i), nil)
	}
	pongs, errs := 0, 0
	for range sent {
		switch m := c.read(); m.Type {
		case switchboard.TypePong:
			pongs++
		case switchboard.TypeError:
			errs++
		default:
			t.Fatalf("unexpected %s", m.Type)
		}
	}
	if pongs != 2 || errs != sent-2 {
		t.Fatalf("%d PONG and %d ERROR, want 2 and %d", pongs, errs, sent-2)
	}
	if got := f.value(t, "switchboard_rate_limited_total"); got != sent-2 {
		t.Errorf("rate_limited_total = %v, want %d", got, sent-2)
	}
	// Dropped messages are not counted in.
	if got := f.value(t, "switchboard_messages_in_total", "type", "PING"); got != 2 {
		t.Errorf("messages_in_total{type=PING} = %v, want 2", got)
	}
}

func TestSlowConsumer(t *testing.T) {
	f := newFixture(t, switchboard.Config{SendQueueSize: 1, WriteTimeout: -1})
	c := f.dial(t)
	c.send(switchboard.TypeSubscribe, "s1", map[string]any{"subscriptions": []string{"firehose"}})
	c.expect(switchboard.TypeSubscribeSuccess)

	// The client reads no more: the socket buffers fill up, then the queue overflows.
	ev, err := switchboard.NewEvent("blob", map[string]string{"data": strings.Repeat("x", 16<<10)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a slow consumer", func() bool {
		for range 64 {
			_ = f.m.Publish(context.Background(), "firehose", ev)
		}
		return f.m.Stats().SlowConsumers > 0
	})
	// The server waits for a close handshake that a client not reading never completes:
	// drop the socket rather than wait for the server's close timeout.
	_ = c.ws.CloseNow()
	waitFor(t, "the connection to be unregistered", func() bool { return f.m.Stats().Connections == 0 })
	if got := f.value(t, "switchboard_slow_consumers_total", "reason", "queue_overflow"); got != 1 {
		t.Errorf("slow_consumers_total{reason=queue_overflow} = %v, want 1", got)
	}
	if got := f.value(t, "switchboard_connections_closed_total", "code", "1013"); got != 1 {
		t.Errorf("connections_closed_total{code=1013} = %v, want 1", got)
	}
}

// TestCardinalityBounded sends 1000 message types the manager does not know and closes
// with a code of its own: neither makes new series.
func TestCardinalityBounded(t *testing.T) {
	f := newFixture(t, switchboard.Config{MessageRate: -1, SendQueueSize: -1}, metrics.WithMessageTypes("CHAT"))
	before := testutil.CollectAndCount(f.obs)
	inSeries := testutil.CollectAndCount(f.obs, "switchboard_messages_in_total")
	c := f.dial(t)
	const unknown = 1000
	for i := range unknown {
		c.send(fmt.Sprintf("MADE_UP_%d", i), "", nil)
	}
	c.send("CHAT", "", nil)
	for range unknown + 1 {
		c.expect(switchboard.TypeError) // no handler for the type
	}
	c.close(4567)
	waitFor(t, "the connection to be unregistered", func() bool { return f.m.Stats().Connections == 0 })

	if got := f.value(t, "switchboard_messages_in_total", "type", "other"); got != unknown {
		t.Errorf("messages_in_total{type=other} = %v, want %d", got, unknown)
	}
	if got := f.value(t, "switchboard_messages_in_total", "type", "CHAT"); got != 1 {
		t.Errorf("messages_in_total{type=CHAT} = %v, want 1 (listed with WithMessageTypes)", got)
	}
	if got := f.value(t, "switchboard_connections_closed_total", "code", "other"); got != 1 {
		t.Errorf("connections_closed_total{code=other} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(f.obs, "switchboard_messages_in_total"); n != inSeries {
		t.Errorf("%d messages_in series after %d unknown types, want %d as before", n, unknown, inSeries)
	}
	if after := testutil.CollectAndCount(f.obs); after != before {
		t.Errorf("%d series in all, %d before", after, before)
	}
	if inSeries > 30 {
		t.Errorf("%d messages_in series: more than the protocol's types", inSeries)
	}
}

// TestOpenLabelsCapped checks that labels set by application code (codec, reasons) take
// new values, but a bounded number of them.
func TestOpenLabelsCapped(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	obs, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	base := testutil.CollectAndCount(obs, "switchboard_auth_failures_total")
	obs.AuthFailure("revoked")
	obs.AuthFailure("revoked")
	if got := gatherValue(t, reg, "switchboard_auth_failures_total", "reason", "revoked"); got != 2 {
		t.Errorf("auth_failures_total{reason=revoked} = %v, want 2", got)
	}
	for i := range 1000 {
		obs.AuthFailure(fmt.Sprint("reason-", i))
	}
	if n := testutil.CollectAndCount(obs, "switchboard_auth_failures_total"); n > base+20 {
		t.Errorf("%d auth_failures series after 1000 reasons (%d known)", n, base)
	}
	if got := gatherValue(t, reg, "switchboard_auth_failures_total", "reason", "other"); got < 1000-20 {
		t.Errorf("auth_failures_total{reason=other} = %v, want the reasons beyond the cap", got)
	}
	obs.ConnectionOpened("msgpack")
	if got := gatherValue(t, reg, "switchboard_connections_opened_total", "codec", "msgpack"); got != 1 {
		t.Errorf("connections_opened_total{codec=msgpack} = %v, want 1", got)
	}
}

func TestDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	_, err := metrics.New(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New on one registry: %v, want an AlreadyRegisteredError", err)
	}

	// A clash with a different metric of the same name is an error too, not a panic.
	reg = prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_rate_limited_total", Help: "x"}))
	if _, err := metrics.New(reg); err == nil {
		t.Error("New over a clashing metric: no error")
	}

	// Wrapped registerers let two sets coexist.
	reg = prometheus.NewRegistry()
	for _, shard := range []string{"a", "b"} {
		if _, err := metrics.New(prometheus.WrapRegistererWith(prometheus.Labels{"shard": shard}, reg)); err != nil {
			t.Errorf("shard %s: %v", shard, err)
		}
	}
}

// TestMetricsLint runs promlint over the exposition: names, units, help texts.
func TestMetricsLint(t *testing.T) {
	obs, err := metrics.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{Logger: discardLogger})
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	obs.Watch(m)
	obs.Watch(m) // no effect
	problems, err := testutil.CollectAndLint(obs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(obs, "switchboard_topics"); n != 1 {
		t.Errorf("%d switchboard_topics series after watching one manager twice, want 1", n)
	}
}

// TestObserverDirect checks the mapping of each Observer call to its series.
func TestObserverDirect(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	obs, err := metrics.New(reg, metrics.WithCloseCodes(4100), metrics.WithFanoutBuckets(0.001, 0.01))
	if err != nil {
		t.Fatal(err)
	}
	obs.HandshakeRejected("rate_limited")
	obs.ConnectionClosed(4100)
	obs.ConnectionClosed(1006)
	obs.ConnectionClosed(3999)
	obs.MessagesOut(switchboard.TypeData, 10, 1000)
	obs.MessagesOut("custom", 3, 30)
	obs.Fanout(switchboard.TargetAll, 10, 5*time.Millisecond)
	obs.Fanout(switchboard.TargetKind(99), 1, time.Microsecond)
	obs.SlowConsumer("write_timeout")
	obs.RateLimited()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"switchboard_handshakes_rejected_total", []string{"reason", "rate_limited"}, 1},
		{"switchboard_connections_closed_total", []string{"code", "4100"}, 1},
		{"switchboard_connections_closed_total", []string{"code", "1006"}, 1},
		{"switchboard_connections_closed_total", []string{"code", "other"}, 1},
		{"switchboard_messages_out_total", []string{"type", "DATA"}, 10},
		{"switchboard_messages_out_total", []string{"type", "other"}, 3},
		{"switchboard_bytes_out_total", nil, 1030},
		{"switchboard_fanout_duration_seconds", []string{"target", "all"}, 1},
		{"switchboard_fanout_duration_seconds", []string{"target", "other"}, 1},
		{"switchboard_slow_consumers_total", []string{"reason", "write_timeout"}, 1},
		{"switchboard_rate_limited_total", nil, 1},
	} {
		if got := gatherValue(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// The gauges wait for Watch.
	if n := testutil.CollectAndCount(obs, "switchboard_connections"); n != 0 {
		t.Errorf("%d switchboard_connections series before Watch, want 0", n)
	}
}

// TestConcurrentUse calls the Observer from many goroutines, new label values included, for
// the race detector, and checks that nothing is lost.
func TestConcurrentUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	obs, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 500
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range rounds {
				obs.MessageIn(switchboard.TypePing, 10)
				obs.MessagesOut(switchboard.TypeData, 2, 20)
				obs.Fanout(switchboard.TargetUsers, 2, time.Microsecond)
				obs.AuthFailure(fmt.Sprint("custom-", (w*rounds+i)%40)) // past the cap
				obs.ConnectionClosed(1000 + i%20)
			}
		}()
	}
	scrapes := 0
	for finished := 0; finished < workers; {
		select {
		case <-done:
			finished++
		default:
			if _, err := reg.Gather(); err != nil {
				t.Fatal(err)
			}
			scrapes++
		}
	}
	const n = workers * rounds
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"switchboard_messages_in_total", []string{"type", "PING"}, n},
		{"switchboard_bytes_in_total", nil, 10 * n},
		{"switchboard_messages_out_total", []string{"type", "DATA"}, 2 * n},
		{"switchboard_fanout_recipients", []string{"target", "users"}, n},
	} {
		if got := gatherValue(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		total := 0.0
		for _, m := range fam.GetMetric() {
			total += m.GetCounter().GetValue()
		}
		switch fam.GetName() {
		case "switchboard_auth_failures_total", "switchboard_connections_closed_total":
			if total != n {
				t.Errorf("%s: %v in all, want %d", fam.GetName(), total, n)
			}
		}
	}
	t.Logf("%d scrapes meanwhile", scrapes)
}

// TestConnectionsBySubprotocol checks switchboard_connections_by_subprotocol against the
// subprotocols the clients negotiated, and that endpoints with subprotocols of their own
// add a bounded number of label values.
func TestConnectionsBySubprotocol(t *testing.T) {
	f := newFixture(t, switchboard.Config{ConnRatePerIP: -1})
	gauge := func(p string) float64 {
		t.Helper()
		return f.value(t, "switchboard_connections_by_subprotocol", "subprotocol", p)
	}
	for _, p := range []string{"none", switchboard.SubprotocolV1, switchboard.SubprotocolV1Batch} {
		if got := gauge(p); got != 0 {
			t.Errorf("before any connection: {subprotocol=%q} = %v, want 0", p, got)
		}
	}
	dialWith := func(url string, protos ...string) *websocket.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos})
		if err != nil {
			t.Fatalf("dial %v: %v", protos, err)
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		return ws
	}
	f.dial(t) // none
	dialWith(f.wsURL(), switchboard.SubprotocolV1)
	batch := dialWith(f.wsURL(), switchboard.SubprotocolV1Batch, switchboard.SubprotocolV1)
	dialWith(f.wsURL(), "unknown.v9", switchboard.SubprotocolV1Batch)
	waitFor(t, "4 connections", func() bool { return f.m.Stats().Connections == 4 })
	for p, want := range map[string]float64{"none": 1, switchboard.SubprotocolV1: 1, switchboard.SubprotocolV1Batch: 2} {
		if got := gauge(p); got != want {
			t.Errorf("{subprotocol=%q} = %v, want %v", p, got, want)
		}
	}
	if got := gauge("unknown.v9"); got != -1 {
		t.Errorf("a subprotocol the server did not accept has a series (%v)", got)
	}
	_ = batch.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "3 connections", func() bool { return f.m.Stats().Connections == 3 })
	if got := gauge(switchboard.SubprotocolV1Batch); got != 1 {
		t.Errorf("after a close: {subprotocol=%q} = %v, want 1", switchboard.SubprotocolV1Batch, got)
	}

	// An endpoint of the application's own, with 40 subprotocols: 16 get a series of their
	// own, the rest count as "other".
	var own []string
	for i := range 40 {
		own = append(own, fmt.Sprintf("app.v%d", i))
	}
	ep := httptest.NewServer(f.m.Endpoint(switchboard.EndpointConfig{Subprotocols: own}))
	t.Cleanup(ep.Close)
	url := "ws" + strings.TrimPrefix(ep.URL, "http")
	for _, p := range own {
		dialWith(url, p)
	}
	waitFor(t, "43 connections", func() bool { return f.m.Stats().Connections == 43 })
	n := testutil.CollectAndCount(f.obs, "switchboard_connections_by_subprotocol")
	if n > 3+16+1 {
		t.Errorf("%d subprotocol series for 40 subprotocols, want at most %d", n, 3+16+1)
	}
	total := 0.0
	for _, p := range append(own, "other") {
		if v := gauge(p); v > 0 {
			total += v
		}
	}
	if total != 40 || gauge("other") != 40-16 {
		t.Errorf("own subprotocols: %v connections counted, %v as other; want 40 and %d", total, gauge("other"), 40-16)
	}
}
