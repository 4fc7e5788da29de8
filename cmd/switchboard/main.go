// Command switchboard is the standalone Switchboard server: WebSocket pub/sub at /ws,
// an HTTP API to publish, broadcast and notify users, a health check, the JavaScript
// client at /switchboard.js and a demo page.
//
// Usage:
//
//	switchboard [serve] [flags]   run the server (the default command)
//	switchboard token [flags]     print a signed JWT, for testing
//	switchboard help              print the flags of the server
//
// Every flag of the server can also be set by an environment variable,
// SWITCHBOARD_<FLAG NAME> (e.g. --max-message-size: SWITCHBOARD_MAX_MESSAGE_SIZE);
// the command line overrides the environment. Run `switchboard --help` for the list.
//
// With no configuration at all, the server listens on 127.0.0.1:8080 in dev mode
// (on by default for loopback addresses): it generates an API key and a JWT secret
// and prints them, and serves GET /api/dev/token, POST /api/dev/publish and POST
// /api/dev/notify (no API key) and answers ACTION {"action": "echo"}, so that the demo
// page at / can get a token, publish, notify and send actions.
//
// With --tls-cert and --tls-key the server serves HTTPS and wss:// itself (TLS 1.2 or
// later); without them it serves plain HTTP and ws://, e.g. behind a TLS-terminating proxy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "Run 'switchboard --help' for usage.")
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run runs the command line args (without the program name) until ctx is cancelled,
// reading the environment of the process. Usage text and printed keys go to stdout,
// logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, os.LookupEnv, stdout, stderr)
	case "token":
		return tokenCommand(args, os.LookupEnv, stdout)
	case "help":
		_, c, _ := parseServeOptions(nil, func(string) (string, bool) { return "", false })
		printServeUsage(stdout, c)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q (want serve, token or help)", cmd)}
}

// printServeUsage writes the help of the server command.
func printServeUsage(w io.Writer, c *cli) {
	fmt.Fprint(w, `Switchboard: realtime WebSocket pub/sub server.

Usage:
  switchboard [serve] [flags]   run the server (the default command)
  switchboard token [flags]     print a signed JWT, for testing (see 'switchboard token --help')
  switchboard help              print this text

Endpoints: /ws (WebSocket), POST /api/publish, POST /api/broadcast,
POST /api/users/{id}/notify, GET /healthz, GET /switchboard.js (the JavaScript
client), GET / (demo page), and in dev mode, without the API key,
GET /api/dev/token?user=ID, POST /api/dev/publish and POST /api/dev/notify.

Each flag can also be set by the environment variable shown next to it; a flag on
the command line overrides the environment, which overrides the default.
Dev mode is on by default when --addr is a loopback address, as it is by default:
'switchboard' alone starts a working local server. Use --dev=false (or
SWITCHBOARD_DEV=false) to turn it off; binding to a non-loopback address turns it
off unless --dev is given. For the limits, 0 means the library default shown.
`)
	c.printFlags(w)
}

// serve runs the server until ctx is cancelled, then shuts it down gracefully.
func serve(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	opts, c, err := parseServeOptions(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printServeUsage(stdout, c)
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.LogLevel}))
	opts.Logger = log

	// The certificate is checked before anything else starts: a bad file fails at once.
	st, err := loadTLS(opts, log, time.Now())
	if err != nil {
		return err
	}
	s, err := newServer(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		_ = s.manager.Shutdown(context.Background())
		return err
	}
	// No ReadTimeout or WriteTimeout: they would cut WebSocket connections, which set
	// their own deadlines, and the API routes bound their body reads themselves.
	// ReadHeaderTimeout also bounds the TLS handshake.
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if st != nil {
		hs.TLSConfig = st.config
	}

	addr := ln.Addr().String()
	httpURL, wsURL := serverURLs(addr, st != nil)
	if opts.Dev {
		if !isLoopback(addr) {
			log.Warn("dev mode on a non-loopback address: anyone who can reach it can get tokens from /api/dev/token " +
				"and publish through /api/dev/publish and /api/dev/notify without the API key")
		}
		printDevBanner(stdout, s, opts, addr, st)
	}
	attrs := []any{"addr", addr, "url", httpURL, "ws_url", wsURL, "tls", st != nil}
	if st != nil {
		attrs = append(attrs, "cert_subject", st.leaf.Subject.String(),
			"cert_expires", st.leaf.NotAfter.UTC().Format(time.RFC3339), "cert_self_signed", st.selfSigned)
	}
	log.Info("listening", append(attrs, "dev", opts.Dev, "dev_source", opts.DevSource,
		"auth", s.authMode, "api", s.apiKey != "", "require_auth", opts.Config.RequireAuth)...)

	errc := make(chan error, 1)
	go func() {
		if st != nil {
			errc <- hs.ServeTLS(ln, "", "") // the certificate is in hs.TLSConfig
		} else {
			errc <- hs.Serve(ln)
		}
	}()

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", opts.ShutdownTimeout)
	case serveErr = <-errc:
		log.Error("server failed", "err", serveErr)
	}

	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	// Stop taking requests first (hijacked WebSocket connections are not waited for),
	// then close every WebSocket with 1001 so clients come back to another instance.
	herr := hs.Shutdown(sctx)
	merr := s.manager.Shutdown(sctx)
	if serveErr == nil {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if herr != nil {
		herr = fmt.Errorf("http shutdown: %w", herr)
	}
	if merr != nil {
		merr = fmt.Errorf("websocket shutdown: %w", merr)
	}
	if err := errors.Join(serveErr, herr, merr); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// serverURLs returns the base URL of the server listening on addr and the URL of its
// WebSocket endpoint: https and wss with TLS, http and ws without.
func serverURLs(addr string, tls bool) (base, ws string) {
	if tls {
		return "https://" + addr, "wss://" + addr + "/ws"
	}
	return "http://" + addr, "ws://" + addr + "/ws"
}

// printDevBanner prints what a developer needs to try the server: the generated keys
// and ready-to-run commands. st is the TLS setup, nil without TLS.
func printDevBanner(w io.Writer, s *server, opts options, addr string, st *serverTLS) {
	why := "--dev"
	switch opts.DevSource {
	case "auto":
		why = "on by default for a loopback address; --dev=false turns it off"
	case "$" + envName("dev"):
		why = "$" + envName("dev")
	}
	base, wsURL := serverURLs(addr, st != nil)
	// curl refuses a self-signed certificate unless told -k (--insecure).
	curl := "curl"
	if st != nil && st.selfSigned {
		curl = "curl -k"
	}
	fmt.Fprintf(w, "\nSwitchboard dev mode (%s)\n", why)
	fmt.Fprintf(w, "  demo page:   %s/\n", base)
	fmt.Fprintf(w, "  WebSocket:   %s\n", wsURL)
	fmt.Fprintf(w, "  JS client:   %s/switchboard.js   (import { Switchboard } from '/switchboard.js')\n", base)
	if s.generatedAPIKey {
		fmt.Fprintf(w, "  API key:     %s   (generated; set %s to keep one)\n", s.apiKey, envName("api-key"))
	}
	if s.generatedJWTSecret {
		fmt.Fprintf(w, "  JWT secret:  %s   (generated; set %s to keep one)\n", s.jwtSecret, envName("jwt-secret"))
	}
	if s.jwtSecret != nil {
		fmt.Fprintf(w, "  dev token:   %s '%s/api/dev/token?user=42'\n", curl, base)
	}
	if s.generatedAPIKey {
		fmt.Fprintf(w, "  publish:     %s -H 'Authorization: Bearer %s' -d '{\"topic\":\"news\",\"payload\":{\"text\":\"hi\"}}' %s/api/publish\n",
			curl, s.apiKey, base)
	}
	if st != nil {
		if st.selfSigned {
			fmt.Fprintf(w, "  TLS:         self-signed certificate (%s): curl needs -k, and browsers need the\n"+
				"               certificate accepted once, by opening the demo page\n", opts.TLSCert)
		} else {
			fmt.Fprintf(w, "  TLS:         %s (for a certificate the system does not trust, add -k to curl)\n", opts.TLSCert)
		}
	}
	fmt.Fprintln(w)
}

// tokenCommand runs `switchboard token`: it prints an HS256 JWT for a user.
func tokenCommand(args []string, getenv func(string) (string, bool), stdout io.Writer) error {
	var (
		user     string
		ttl      = time.Hour
		secret   string
		claimsJS string
		issuer   string
		audience string
	)
	c := newCLI("switchboard token", getenv)
	c.section = "Flags"
	c.stringVar(&user, "user", "", "user `id` (the sub claim); required")
	c.durationVar(&ttl, "ttl", "", "lifetime of the token")
	c.stringVar(&secret, "secret", envName("jwt-secret"), "HMAC `secret` the server verifies tokens with (its --jwt-secret)")
	c.stringVar(&claimsJS, "claims", "", "extra claims as a `JSON` object, e.g. '{\"role\":\"admin\"}'")
	c.stringVar(&issuer, "issuer", envName("jwt-issuer"), "`iss` claim (the server's --jwt-issuer)")
	c.stringVar(&audience, "audience", envName("jwt-audience"), "`aud` claim (the server's --jwt-audience)")
	if err := c.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, "Usage: switchboard token --user ID [--ttl 1h] [--secret S] [--claims JSON]\n\n"+
				"Prints an HS256 JWT for the user, signed with the server's JWT secret.\n")
			c.printFlags(stdout)
			return nil
		}
		return err
	}
	if user == "" {
		return usageError{errors.New("token: --user is required")}
	}
	if secret == "" {
		return usageError{fmt.Errorf("token: no secret: pass --secret or set %s (dev mode prints the server's generated secret at start)", envName("jwt-secret"))}
	}
	if ttl <= 0 {
		return usageError{errors.New("token: --ttl must be positive")}
	}
	var claims map[string]any
	if claimsJS != "" {
		dec := json.NewDecoder(strings.NewReader(claimsJS))
		dec.UseNumber() // keep numbers as written, e.g. large integer IDs
		err := dec.Decode(&claims)
		if err == nil {
			if _, end := dec.Token(); end != io.EOF {
				err = errors.New("trailing data")
			}
		}
		if err != nil || claims == nil {
			return usageError{fmt.Errorf(`token: --claims must be a JSON object, e.g. '{"role":"admin"}'`)}
		}
	}
	tok, err := issueToken([]byte(secret), user, ttl, claims, issuer, audience)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
