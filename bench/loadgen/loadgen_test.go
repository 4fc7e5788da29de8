package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

// The tests run every mode with a few connections against both kinds of target, so that
// the tools keep working as the library changes. They assert on correctness (everyone
// connected, nothing lost, figures present), never on timings.

const testConns = 50

func testConfig(target, url string, pid int, mode string) Config {
	cfg := Config{
		Target: target, URL: url, Mode: mode, Conns: testConns, Topic: "bench",
		FirstIP: "127.0.0.1", SourceIPs: 1, ServerPID: pid,
		Duration: 300 * time.Millisecond, Window: 4, Rate: 20, PayloadSize: 128,
		Settle: 50 * time.Millisecond, DialConcurrency: 16, Timeout: time.Minute,
		StallTimeout: 10 * time.Second, Graceful: true,
	}
	if runtime.GOOS == "linux" {
		// The whole of 127.0.0.0/8 is local on Linux: exercise the spreading.
		cfg.FirstIP, cfg.SourceIPs = "127.0.0.2", 3
	}
	return cfg
}

func runModes(t *testing.T, base Config) {
	for _, mode := range []string{"idle", "throughput", "latency", "storm"} {
		t.Run(mode, func(t *testing.T) {
			cfg := base
			cfg.Mode = mode
			r, err := newRunner(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
			defer cancel()
			res := r.run(ctx)
			r.finish()
			if res.Error != "" {
				t.Fatalf("run failed: %s", res.Error)
			}
			if res.Ready != testConns || res.Failed != 0 {
				t.Fatalf("ready %d, failed %d; want %d ready", res.Ready, res.Failed, testConns)
			}
			if res.ReadyS <= 0 || res.ProbeS < res.ReadyS || res.ConnectS > res.ReadyS {
				t.Errorf("connect times out of order: connect %v, ready %v, probe %v", res.ConnectS, res.ReadyS, res.ProbeS)
			}
			switch mode {
			case "idle":
				if res.ServerRSSStartKB <= 0 || res.ServerRSSEndKB <= 0 {
					t.Errorf("server RSS not measured: %d → %d KiB", res.ServerRSSStartKB, res.ServerRSSEndKB)
				}
			case "throughput", "latency":
				if res.Published == 0 || res.Expected != res.Published*testConns {
					t.Errorf("published %d, expected %d", res.Published, res.Expected)
				}
				if res.Lost != 0 || res.Received != res.Expected || res.ClientsWithLoss != 0 {
					t.Errorf("lost %d: received %d of %d", res.Lost, res.Received, res.Expected)
				}
				if res.MsgsPerS <= 0 || res.Samples != res.Received || res.MaxMS < res.P50MS {
					t.Errorf("figures missing: %+v", res)
				}
				if res.FrameBytes < float64(cfg.PayloadSize) {
					t.Errorf("frames of %.0f bytes carry a %d-byte payload", res.FrameBytes, cfg.PayloadSize)
				}
			}
			// The JSON form carries the figures the report reads.
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var back Result
			if err := json.Unmarshal(b, &back); err != nil || back.Ready != res.Ready {
				t.Errorf("JSON round trip: %v, %+v", err, back)
			}
		})
	}
}

// TestFloor runs the load generator against the floor broadcaster, built and started
// as its own process (it is a main package).
func TestFloor(t *testing.T) {
	goTool, err := exec.LookPath(filepath.Join(runtime.GOROOT(), "bin", "go"))
	if err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to build the floor with")
		}
	}
	bin := filepath.Join(t.TempDir(), "floor")
	if out, err := exec.Command(goTool, "build", "-o", bin, "../floor").CombinedOutput(); err != nil {
		t.Fatalf("building the floor: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the floor's address: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "floor listening on "))
	runModes(t, testConfig(targetFloor, "http://"+addr, cmd.Process.Pid, ""))
}

// TestSwitchboard runs the load generator against a Manager in this process.
func TestSwitchboard(t *testing.T) {
	cfg := startSwitchboard(t, switchboard.CompressionOff)
	runModes(t, cfg)
}

// TestSwitchboardBatchCompression offers switchboard.v1.batch and permessage-deflate and
// checks that both are negotiated, that batched envelopes are all counted, and that the
// wire carries fewer bytes than the envelopes.
func TestSwitchboardBatchCompression(t *testing.T) {
	cfg := startSwitchboard(t, switchboard.CompressionContextTakeover)
	cfg.Subprotocol, cfg.Compression = "batch", "context-takeover"
	cfg.PayloadKind, cfg.PayloadSize = "records", 1024
	cfg.Mode, cfg.Window = "throughput", 16
	r, err := newRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	res := r.run(ctx)
	r.finish()
	if res.Error != "" {
		t.Fatalf("run failed: %s", res.Error)
	}
	if res.Subprotocol != "switchboard.v1.batch" || res.CompressedConns != testConns {
		t.Errorf("negotiated subprotocol %q, compression on %d of %d", res.Subprotocol, res.CompressedConns, testConns)
	}
	if res.Lost != 0 || res.Received != res.Expected || res.Received == 0 {
		t.Errorf("lost %d: received %d of %d", res.Lost, res.Received, res.Expected)
	}
	if res.Frames == 0 || res.Frames > res.Received || res.MsgsPerFrame < 1 {
		t.Errorf("%d frames for %d deliveries", res.Frames, res.Received)
	}
	if res.FrameBytes < 1024 || res.WireBytesPerMsg <= 0 || res.WireBytesPerMsg >= res.FrameBytes {
		t.Errorf("envelopes of %.0f bytes took %.0f bytes on the wire", res.FrameBytes, res.WireBytesPerMsg)
	}
	var sb strings.Builder
	printSummary(&sb, res)
	if !strings.Contains(sb.String(), "switchboard.v1.batch") {
		t.Errorf("summary lacks the negotiated subprotocol:\n%s", sb.String())
	}
}

// startSwitchboard serves a Manager in this process, with a publish handler shaped like
// cmd/switchboard's POST /api/publish, and returns the load generator's configuration.
func startSwitchboard(t *testing.T, compression switchboard.CompressionMode) Config {
	const secret, apiKey = "test-secret-test-secret-test-secret", "test-key"
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{
		Authenticator: jwt, ConnRatePerIP: -1, MaxConnsPerUser: -1, MessageRate: -1, SendQueueSize: 1024,
		Compression: compression,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	mux.HandleFunc("POST /api/publish", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiKey {
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		}
		var body struct {
			Topic   string          `json:"topic"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msg, err := switchboard.NewMessage(body.Type, body.Payload)
		if err == nil {
			err = m.Publish(r.Context(), body.Topic, msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write([]byte("{}"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	cfg := testConfig(targetSwitchboard, srv.URL, os.Getpid(), "")
	cfg.JWTSecret, cfg.User, cfg.APIKey = secret, "bench", apiKey
	return cfg
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < 0 || d > c.want/100 {
			t.Errorf("quantile(%v) = %v, want %v (within 1%% above)", c.q, got, c.want)
		}
	}
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345} {
		i := histIndex(v)
		if up := histUpper(i); up < v || (i > 0 && histUpper(i-1) >= v) {
			t.Errorf("value %d in bucket %d with upper edge %d (previous %d)", v, i, up, histUpper(i-1))
		}
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	lines := []Result{
		{Target: targetFloor, Mode: "throughput", Conns: 1000, Window: 16, MsgsPerS: 100, ServerCPUMsgUS: 10},
		{Target: targetSwitchboard, Mode: "throughput", Conns: 1000, Window: 16, MsgsPerS: 150, ServerCPUMsgUS: 5},
		{Target: targetFloor, Mode: "throughput", Conns: 1000, Window: 16, MsgsPerS: 120, ServerCPUMsgUS: 12},
		{Target: targetSwitchboard, Mode: "throughput", Conns: 1000, Window: 16, MsgsPerS: 130, ServerCPUMsgUS: 7, Error: "1 messages lost"},
	}
	var sb strings.Builder
	for _, r := range lines {
		b, _ := json.Marshal(r)
		sb.Write(b)
		sb.WriteByte('\n')
	}
	name := filepath.Join(dir, "r.jsonl")
	if err := os.WriteFile(name, []byte("not json, skipped\n"+sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := reportCommand([]string{name}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| throughput, 1k conns, window 16 | deliveries/s (publications × subscribers) | 110 (100–120) | 140 (130–150) | 1.27× |",
		"1 messages lost",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
