package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// get fetches path from ts and returns the status and body.
func get(t *testing.T, ts *httptest.Server, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode, string(body)
}

func TestMetricsEndpoint(t *testing.T) {
	_, ts := startServer(t, testOptions())
	c := dial(t, ts)
	c.roundTrip() // PING → PONG: the connection is registered and counted

	status, body := get(t, ts, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	for _, want := range []string{
		`switchboard_connections{state="connected"} 1`,
		`switchboard_connections{state="authenticated"} 0`,
		`switchboard_connections_by_subprotocol{subprotocol="none"} 1`,
		`switchboard_connections_opened_total{codec="json"} 1`,
		`switchboard_messages_in_total{type="PING"} 1`,
		`switchboard_messages_out_total{type="PONG"} 1`,
		"switchboard_fanout_duration_seconds_bucket",
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if status, _ := get(t, ts, "/debug/pprof/"); status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without --pprof: %d, want 404", status)
	}
}

func TestMetricsDisabled(t *testing.T) {
	o := testOptions()
	o.Metrics = false
	s, ts := startServer(t, o)
	if status, _ := get(t, ts, "/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics with --metrics=false: %d, want 404", status)
	}
	if cfg := s.manager.Config(); cfg.Observer != nil {
		t.Errorf("Config.Observer = %v with --metrics=false, want nil", cfg.Observer)
	}
}

func TestPprof(t *testing.T) {
	o := testOptions()
	o.Pprof = true
	_, ts := startServer(t, o)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if status, body := get(t, ts, path); status != http.StatusOK {
			t.Errorf("GET %s with --pprof: %d %.200s", path, status, body)
		}
	}
}

func TestObservabilityFlags(t *testing.T) {
	o, _, err := parseServeOptions(nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Metrics || o.Pprof {
		t.Errorf("defaults: metrics %v pprof %v, want true and false", o.Metrics, o.Pprof)
	}
	o, _, err = parseServeOptions([]string{"--metrics=false", "--pprof"}, noEnv)
	if err != nil || o.Metrics || !o.Pprof {
		t.Errorf("flags: %v metrics %v pprof %v", err, o.Metrics, o.Pprof)
	}
	o, _, err = parseServeOptions(nil, envMap(map[string]string{"SWITCHBOARD_METRICS": "false", "SWITCHBOARD_PPROF": "true"}))
	if err != nil || o.Metrics || !o.Pprof {
		t.Errorf("environment: %v metrics %v pprof %v", err, o.Metrics, o.Pprof)
	}

	var help bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &help, &help); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--metrics", "$SWITCHBOARD_METRICS", "/metrics", "--pprof", "$SWITCHBOARD_PPROF", "/debug/pprof/"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
