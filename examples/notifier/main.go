// Command notifier is a local application's backend that notifies its own front end:
// a REST API and the front end's WebSocket (/ws) on the same port, every notification a
// frame that is exactly {"type": "<snake_case type>", "data": <payload>}.
//
// POST /api/job/start runs a fake long job (a database upgrade with progress, a data
// migration, warnings, a balance refresh…). Notifications sent while no front end is
// connected wait in a queue and reach the first front end that connects and sends {},
// in order; GET /api/messages drains the same queue for front ends that poll.
// See README.md.
//
// Usage:
//
//	go run ./examples/notifier [--addr 127.0.0.1:5042] [--origin localhost:*] [--step 300ms]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5042", "address to listen on (keep it on 127.0.0.1: the API has no authentication)")
	origins := flag.String("origin", "", `comma-separated host patterns browsers may connect from besides the same origin, e.g. "localhost:*"`)
	step := flag.Duration("step", 300*time.Millisecond, "pause between the steps of the fake job")
	certFile := flag.String("tls-cert", "", "PEM certificate `file`: serve https:// and wss:// (with --tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key `file` of --tls-cert")
	flag.Parse()
	if (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(os.Stderr, "notifier: --tls-cert and --tls-key go together")
		os.Exit(2)
	}
	cfg := appConfig{Step: *step, CertFile: *certFile, KeyFile: *keyFile}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	if err := run(*addr, cfg); err != nil {
		slog.Error("notifier: " + err.Error())
		os.Exit(1)
	}
}

func run(addr string, cfg appConfig) error {
	a := newApp(cfg)
	srv := &http.Server{Addr: addr, Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if cfg.CertFile != "" {
			slog.Info("notifier: listening", "api", "https://"+addr+"/api", "ws", "wss://"+addr+"/ws")
			errc <- srv.ListenAndServeTLS(cfg.CertFile, cfg.KeyFile)
			return
		}
		slog.Info("notifier: listening", "api", "http://"+addr+"/api", "ws", "ws://"+addr+"/ws")
		errc <- srv.ListenAndServe()
	}()
	select {
	case err := <-errc:
		_ = a.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx) // stop taking requests; the sockets are the manager's
	if serr := a.Shutdown(sctx); err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
