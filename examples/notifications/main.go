// Command notifications is a small order backend that embeds switchboard to push
// notifications to its users over WebSockets.
//
// Its own REST API creates and lists orders; every new order sends a NOTIFICATION to the
// user's connections, a DATA message on the user's private topic "user:<id>:orders", and
// a redacted EVENT on the public topic "orders:feed". Clients may cancel their own orders
// with an ACTION message. See README.md for a walk-through.
//
// Usage:
//
//	go run ./examples/notifications [--addr 127.0.0.1:8090]
//
// The JWT secret is read from NOTIFY_JWT_SECRET; without it a fixed, public demo secret
// is used.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// demoSecret signs tokens when NOTIFY_JWT_SECRET is unset. It is in the source code,
// so anyone can forge tokens with it: never use it outside a demo.
const demoSecret = "switchboard-notifications-DEMO-secret-do-not-use"

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		slog.Error("notifications: " + err.Error())
		os.Exit(1)
	}
}

func run(addr string) error {
	secret := []byte(os.Getenv("NOTIFY_JWT_SECRET"))
	if len(secret) == 0 {
		secret = []byte(demoSecret)
		slog.Warn("NOTIFY_JWT_SECRET is not set: using the fixed DEMO secret, which is public", "secret", demoSecret)
	}
	a := newApp(secret)

	srv := &http.Server{
		Addr:              addr,
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 1)
	go func() {
		slog.Info("notifications: listening", "url", "http://"+addr, "ws", "ws://"+addr+"/ws")
		slog.Warn("GET /token hands out tokens for any user: demo only")
		errc <- srv.ListenAndServe()
	}()

	select {
	case err := <-errc:
		// The listener failed (address in use, say): nothing to drain but the manager.
		_ = a.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	stop() // a second Ctrl-C kills the process at once
	slog.Info("notifications: shutting down")

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// First stop taking requests: the listener closes, so clients that reconnect after
	// the 1001 below find the port closed instead of a half-dead server. Shutdown does not
	// wait for WebSockets (they are hijacked connections); the manager closes those.
	err := srv.Shutdown(sctx)
	if merr := a.Shutdown(sctx); err == nil {
		err = merr
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
