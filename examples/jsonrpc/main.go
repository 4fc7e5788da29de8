// Command jsonrpc is a toy blockchain node that serves JSON-RPC 2.0 over WebSocket with
// switchboard's jsonrpc adapter.
//
// It makes a block every --block-interval and answers getblockcount, getbalance [address]
// and getblock [height]; subscribe ["newBlocks"] pushes each new block. The JSON-RPC
// endpoint is at / and /rpc; the default switchboard endpoint at /ws. With --tls-cert and
// --tls-key it serves wss://. With SWITCHBOARD_JWT_SECRET set, HS256 JWTs signed with it
// authenticate connections (handshake token or the authenticate method).
//
// Usage:
//
//	go run ./examples/jsonrpc [--addr 127.0.0.1:8333] [--block-interval 3s] [--tls-cert cert.pem --tls-key key.pem]
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

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8333", "address to listen on")
	interval := flag.Duration("block-interval", 3*time.Second, "time between blocks")
	cert := flag.String("tls-cert", "", "TLS certificate (PEM) to serve wss://")
	key := flag.String("tls-key", "", "TLS private key (PEM) to serve wss://")
	flag.Parse()
	if err := run(*addr, *interval, *cert, *key); err != nil {
		slog.Error("jsonrpc: " + err.Error())
		os.Exit(1)
	}
}

func newManager() (*switchboard.Manager, error) {
	cfg := switchboard.Config{}
	if secret := os.Getenv("SWITCHBOARD_JWT_SECRET"); secret != "" {
		a, err := auth.NewJWT(auth.JWTConfig{HMACSecret: []byte(secret)})
		if err != nil {
			return nil, err
		}
		cfg.Authenticator = a
	}
	return switchboard.New(cfg), nil
}

func run(addr string, interval time.Duration, certFile, keyFile string) error {
	if (certFile == "") != (keyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	m, err := newManager()
	if err != nil {
		return err
	}
	ch := newChain(m)
	srv := &http.Server{Addr: addr, Handler: newHandler(m, ch), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go ch.Run(ctx, interval)

	errc := make(chan error, 1)
	go func() {
		scheme := "ws"
		if certFile != "" {
			scheme = "wss"
			errc <- srv.ListenAndServeTLS(certFile, keyFile)
			return
		}
		slog.Info("listening", "url", scheme+"://"+addr+"/rpc")
		errc <- srv.ListenAndServe()
	}()
	if certFile != "" {
		slog.Info("listening", "url", "wss://"+addr+"/rpc")
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.Shutdown(sctx)
	return srv.Shutdown(sctx)
}
