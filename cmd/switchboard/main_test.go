package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

func TestTokenCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"token", "--user", "42", "--ttl", "10m",
		"--secret", testSecret, "--claims", `{"role":"admin","org":12345678901}`}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	j, err := auth.NewJWT(auth.JWTConfig{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := j.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatalf("the server's authenticator rejects the token %q: %v", tok, err)
	}
	if id.UserID != "42" || id.Claims["role"] != "admin" || id.Claims["org"] != float64(12345678901) {
		t.Errorf("identity %+v", id)
	}

	// The secret from the environment, with the issuer and audience a server checks.
	env := envMap(map[string]string{
		"SWITCHBOARD_JWT_SECRET": testSecret, "SWITCHBOARD_JWT_ISSUER": "me", "SWITCHBOARD_JWT_AUDIENCE": "app",
	})
	out.Reset()
	if err := tokenCommand([]string{"--user", "7"}, env, &out); err != nil {
		t.Fatal(err)
	}
	j, _ = auth.NewJWT(auth.JWTConfig{HMACSecret: []byte(testSecret), Issuer: "me", Audience: "app"})
	if id, err := j.Authenticate(context.Background(), strings.TrimSpace(out.String())); err != nil || id.UserID != "7" {
		t.Errorf("token from env secret: %v %+v", err, id)
	}

	for name, args := range map[string][]string{
		"no secret":   {"--user", "42"},
		"no user":     {"--secret", "s"},
		"bad claims":  {"--user", "42", "--secret", "s", "--claims", `["x"]`},
		"bad ttl":     {"--user", "42", "--secret", "s", "--ttl", "-1h"},
		"stray words": {"--user", "42", "--secret", "s", "more"},
	} {
		out.Reset()
		err := tokenCommand(args, noEnv, &out)
		var ue usageError
		if !errors.As(err, &ue) || out.Len() != 0 {
			t.Errorf("%s: err %v, output %q; want a usage error and no token", name, err, out.String())
		}
	}
}

// logWatch collects the log of run and reports the address it listens on.
type logWatch struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addrs chan string
}

var listenLine = regexp.MustCompile(`msg=listening addr=(\S+)`)

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := listenLine.FindSubmatch(p); m != nil {
		w.addrs <- string(m[1])
	}
	return w.buf.Write(p)
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader on two goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startRun runs the server command in the background and returns its address, its
// stdout and a channel with run's result.
func startRun(t *testing.T, ctx context.Context, args ...string) (addr string, stdout *syncBuffer, done chan error) {
	t.Helper()
	stdout = &syncBuffer{}
	logs := &logWatch{addrs: make(chan string, 1)}
	done = make(chan error, 1)
	go func() { done <- run(ctx, args, stdout, logs) }()
	waitCtx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	select {
	case addr = <-logs.addrs:
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, logs)
	case <-waitCtx.Done():
		t.Fatalf("run did not start listening\n%s", logs)
	}
	return addr, stdout, done
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _, done := startRun(t, ctx, "--addr", "127.0.0.1:0", "--dev=false",
		"--api-key", testAPIKey, "--jwt-secret", testSecret)

	res, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), waitLimit)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	cancel()
	// The client is told: DISCONNECT, then close 1001 (going away: reconnect).
	var sawDisconnect bool
	for {
		_, frame, err := ws.Read(dctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != switchboard.CloseGoingAway {
				t.Errorf("connection ended with %v (close status %d), want close 1001", err, code)
			}
			break
		}
		sawDisconnect = sawDisconnect || strings.Contains(string(frame), `"type":"DISCONNECT"`)
	}
	if !sawDisconnect {
		t.Error("no DISCONNECT before the close")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-dctx.Done():
		t.Fatal("run did not return after cancel")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("still serving after run returned")
	}
}

func TestRunDevModePrintsKeys(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, stdout, done := startRun(t, ctx, "--addr", "127.0.0.1:0", "--dev", "--api-key=", "--jwt-secret=")
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	m := regexp.MustCompile(`API key:\s+(\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no API key printed in dev mode:\n%s", stdout)
	}
	if !strings.Contains(stdout.String(), "JWT secret:") {
		t.Errorf("no JWT secret printed in dev mode:\n%s", stdout)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/broadcast", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+m[1])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("broadcast with the printed key: %d", res.StatusCode)
	}
}
