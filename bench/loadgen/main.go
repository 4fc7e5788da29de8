// Command loadgen load-tests a Switchboard server (cmd/switchboard) or the floor
// broadcaster (bench/floor) over loopback WebSocket connections.
//
//	loadgen --target switchboard --url http://127.0.0.1:8080 --jwt-secret S --api-key K \
//	        --server-pid PID --mode throughput --conns 1000 --duration 10s
//	loadgen --target floor --url http://127.0.0.1:8090 --server-pid PID --mode idle --conns 10000
//	loadgen report results.jsonl…      # the markdown table of bench/run-matrix.sh
//
// Modes: idle (server RSS per connection, connect rate), throughput (deliveries per second
// with at most --window publications in flight), latency (publish→receive latency at a
// fixed --rate), storm (every client connects at once; time until all are subscribed).
// Every client subscribes to one topic; publications go through the server's HTTP API.
// See bench/README.md for what each figure means.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := reportCommand(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen report:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(runCommand(os.Args[1:], os.Stdout, os.Stderr))
}

// runCommand runs one load test and returns the exit status: 0 when the run went as
// planned, 1 when it ran but something was off (loss, failures: the figures are still
// printed), 2 for a usage error.
func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var asJSON bool
	fs.StringVar(&cfg.Target, "target", targetSwitchboard, "server kind: switchboard (wire protocol v1, /ws and POST /api/publish) or floor (bench/floor: /ws and POST /publish?topic=)")
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of the server; must be a loopback address")
	fs.StringVar(&cfg.Mode, "mode", "idle", "idle, throughput, latency or storm")
	fs.IntVar(&cfg.Conns, "conns", 1000, "client connections (all subscribe to --topic)")
	fs.IntVar(&cfg.SourceIPs, "source-ips", 0, "spread the connections over this many source addresses from --first-ip up (0: one per 5,000 connections)")
	fs.StringVar(&cfg.FirstIP, "first-ip", "127.0.0.2", "first source address of client connections")
	fs.StringVar(&cfg.Topic, "topic", "bench", "topic every client subscribes to")
	fs.StringVar(&cfg.Token, "token", "", "switchboard: JWT every client authenticates with (one user for all)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", os.Getenv("SWITCHBOARD_JWT_SECRET"), "switchboard: mint the token with this HMAC secret when --token is not given (default $SWITCHBOARD_JWT_SECRET)")
	fs.StringVar(&cfg.User, "user", "loadgen", "switchboard: user ID of a minted token")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("SWITCHBOARD_API_KEY"), "switchboard: API key for POST /api/publish (default $SWITCHBOARD_API_KEY)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "pid of the server, for its RSS (/proc/PID/status) and CPU (/proc/PID/stat); 0: not measured")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "throughput, latency: how long to publish")
	fs.IntVar(&cfg.Window, "window", 16, "throughput: publications in flight at most (a publication is done when every subscriber has it)")
	fs.Float64Var(&cfg.Rate, "rate", 10, "latency: publications per second")
	fs.IntVar(&cfg.PayloadSize, "payload-size", 128, "bytes of each published JSON payload")
	fs.DurationVar(&cfg.Settle, "settle", 5*time.Second, "idle: wait this long after every client is ready before reading the server's RSS")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 256, "connections being set up at once (storm: ignored, all at once)")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "bound on the whole run; the program exits by itself")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", 10*time.Second, "throughput, latency: stop when no publication completes for this long")
	fs.BoolVar(&cfg.Graceful, "graceful-close", true, "close connections with a close handshake at the end (false: drop them)")
	fs.StringVar(&cfg.Subprotocol, "subprotocol", "none", "what clients offer in Sec-WebSocket-Protocol: none, v1 (switchboard.v1) or batch (switchboard.v1.batch: several envelopes per frame, split on \"\\n\")")
	fs.StringVar(&cfg.Compression, "compression", "off", "permessage-deflate the clients offer: off, no-context-takeover or context-takeover")
	fs.StringVar(&cfg.PayloadKind, "payload-kind", "pad", "payload filler: pad (\"xxx…\") or records (an array of similar JSON objects, as an API would send)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object with every figure on stdout (the summary goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	r, err := newRunner(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}

	// The run is bounded twice: its context, and a hard exit a little later in case
	// something ignores the context.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	hard := time.AfterFunc(cfg.Timeout+20*time.Second, func() {
		fmt.Fprintln(stderr, "loadgen: hard timeout, exiting")
		os.Exit(3)
	})
	defer hard.Stop()

	res := r.run(ctx)
	summary := stdout
	if asJSON {
		summary = stderr
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	}
	printSummary(summary, res)
	r.finish()
	if res.Error != "" {
		return 1
	}
	return 0
}

// printSummary writes the human-readable form of res.
func printSummary(w io.Writer, r *Result) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("loadgen: %s %s, %d connections from %d source address(es), %d-byte payloads",
		r.Target, r.Mode, r.Conns, r.SourceIPs, r.PayloadBytes)
	p("  NOTE: server and load generator share this machine's CPUs; figures are for comparison, not capacity")
	p("  offered: subprotocol %s, compression %s, %s payload; negotiated: subprotocol %q, compression on %d of %d connections",
		r.SubprotocolOffered, r.CompressionOffered, r.PayloadKind, r.Subprotocol, r.CompressedConns, r.Ready)
	p("  connect: %d ready, %d failed; all handshakes %.3fs, all subscribed %.3fs (%.0f conn/s, %d dialing at once), all probed %.3fs",
		r.Ready, r.Failed, r.ConnectS, r.ReadyS, r.ConnectRate, r.DialConcurrency, r.ProbeS)
	if r.ServerCPUConnUS > 0 {
		p("  server CPU per connection set up: %.0f µs", r.ServerCPUConnUS)
	}
	switch r.Mode {
	case "idle":
		if r.ServerRSSEndKB > 0 {
			p("  server RSS: %.1f MiB before, %.1f MiB after → %.1f KiB per connection",
				float64(r.ServerRSSStartKB)/1024, float64(r.ServerRSSEndKB)/1024, r.RSSPerConnKB)
		} else {
			p("  server RSS: not measured (--server-pid)")
		}
		p("  loadgen RSS: %.1f MiB; connections closed during the settle: %d", float64(r.LoadgenRSSKB)/1024, r.ClientsClosed)
	case "throughput", "latency":
		if r.Mode == "throughput" {
			p("  window %d publications in flight", r.Window)
		} else {
			p("  rate %.1f publications/s (%d ticks skipped: every publisher busy)", r.Rate, r.Skipped)
		}
		p("  %d publications in %.2fs (%.0f/s) → %.0f deliveries/s, %.0f bytes per frame",
			r.Published, r.DurationS, r.PubsPerS, r.MsgsPerS, r.FrameBytes)
		p("  %d frames (%.2f envelopes per frame); on the wire %.1f bytes per delivery (client socket reads, framing and compression included)",
			r.Frames, r.MsgsPerFrame, r.WireBytesPerMsg)
		p("  loss: expected %d, received %d, lost %d (%d clients short), %d publish errors, %d clients closed",
			r.Expected, r.Received, r.Lost, r.ClientsWithLoss, r.PublishErrors, r.ClientsClosed)
		if r.ServerCPUCores > 0 {
			p("  CPU: server %.2f cores (%.2f µs per delivery), loadgen %.2f cores, rest of the machine %.2f cores",
				r.ServerCPUCores, r.ServerCPUMsgUS, r.LoadgenCPUCores, r.OtherCPUCores)
		} else {
			p("  CPU: server not measured (--server-pid), loadgen %.2f cores", r.LoadgenCPUCores)
		}
		p("  publish→receive latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples)",
			r.P50MS, r.P90MS, r.P99MS, r.MaxMS, r.Samples)
	}
	if r.ClientErrors > 0 {
		p("  %d client-side errors (first is the error below)", r.ClientErrors)
	}
	if r.Error != "" {
		p("  ERROR: %s", strings.TrimSpace(r.Error))
	} else {
		p("  ok")
	}
}
