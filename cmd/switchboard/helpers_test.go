package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

const (
	testAPIKey = "test-api-key-0123456789"
	testSecret = "test-jwt-secret-0123456789abcdef0123456789"
	// waitLimit only bounds how long a broken test hangs; nothing is timed against it.
	waitLimit = 10 * time.Second
)

var discardLogger = slog.New(slog.DiscardHandler)

// msgSeq numbers the messages the test clients send.
var msgSeq atomic.Int64

// noEnv is a getenv that finds nothing.
func noEnv(string) (string, bool) { return "", false }

// envMap returns a getenv reading m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// testOptions returns options for a server outside dev mode with an API key and a
// JWT secret.
func testOptions() options {
	o := defaultOptions()
	o.APIKey = testAPIKey
	o.JWTSecret = testSecret
	o.Logger = discardLogger
	return o
}

// startServer builds a server from o and serves it on 127.0.0.1.
func startServer(t *testing.T, o options) (*server, *httptest.Server) {
	t.Helper()
	s, err := newServer(o)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	ts := httptest.NewServer(s.handler)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { // runs before ts.Close
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.manager.Shutdown(ctx); err != nil {
			t.Errorf("manager shutdown: %v", err)
		}
	})
	return s, ts
}

// apiResult is an HTTP response with its JSON body decoded.
type apiResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends an HTTP request with the given API key ("" for none) and decodes the JSON
// answer.
func do(t *testing.T, ts *httptest.Server, method, path, key, body string) apiResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	r := apiResult{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if method != http.MethodHead {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: Content-Type %q, want application/json; body %s", method, path, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	return r
}

// wireMsg is a message of wire protocol v1 as a client reads it.
type wireMsg struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id"`
	CorrelationID string          `json:"correlation_id"`
	Topic         string          `json:"topic"`
}

func (m wireMsg) payload(t *testing.T) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("%s payload %s: %v", m.Type, m.Payload, err)
	}
	return p
}

// wsClient is a raw WebSocket client of the wire protocol.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

// dial opens a WebSocket connection to ts's /ws.
func dial(t *testing.T, ts *httptest.Server) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &wsClient{t: t, ws: ws}
}

// send writes a message of type typ and returns its id.
func (c *wsClient) send(typ string, payload any) string {
	c.t.Helper()
	id := fmt.Sprintf("%s-%d", typ, msgSeq.Add(1))
	frame, err := json.Marshal(map[string]any{"type": typ, "id": id, "payload": payload})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, frame); err != nil {
		c.t.Fatalf("write %s: %v", typ, err)
	}
	return id
}

// next reads messages until one of the given types arrives, skipping the others
// (server PINGs, replies the test does not care about), and returns it.
func (c *wsClient) next(types ...string) wireMsg {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		_, frame, err := c.ws.Read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %v: %v", types, err)
		}
		var m wireMsg
		if err := json.Unmarshal(frame, &m); err != nil {
			c.t.Fatalf("frame is not JSON: %v: %s", err, frame)
		}
		for _, typ := range types {
			if m.Type == typ {
				return m
			}
		}
	}
}

// authenticate sends AUTHENTICATE with a token for user and waits for success.
func (c *wsClient) authenticate(user string) {
	c.t.Helper()
	tok, err := auth.NewHMACToken([]byte(testSecret), user, time.Hour, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	id := c.send(switchboard.TypeAuthenticate, map[string]any{"auth": map[string]string{"token": tok}})
	m := c.next(switchboard.TypeAuthenticateSuccess, switchboard.TypeAuthenticateFailure)
	if m.Type != switchboard.TypeAuthenticateSuccess || m.CorrelationID != id {
		c.t.Fatalf("AUTHENTICATE as %s: got %s %s (correlation %q)", user, m.Type, m.Payload, m.CorrelationID)
	}
	if got := m.payload(c.t)["user_id"]; got != user {
		c.t.Fatalf("AUTHENTICATE_SUCCESS user_id = %v, want %s", got, user)
	}
}

// subscribe sends SUBSCRIBE and waits for success.
func (c *wsClient) subscribe(topics ...string) {
	c.t.Helper()
	c.send(switchboard.TypeSubscribe, map[string]any{"subscriptions": topics})
	m := c.next(switchboard.TypeSubscribeSuccess, switchboard.TypeSubscribeFailure)
	if m.Type != switchboard.TypeSubscribeSuccess {
		c.t.Fatalf("SUBSCRIBE %v: got %s %s", topics, m.Type, m.Payload)
	}
}

// roundTrip sends PING and waits for the PONG, so everything the server had to do
// for earlier messages of this connection is done.
func (c *wsClient) roundTrip() {
	c.t.Helper()
	id := c.send(switchboard.TypePing, nil)
	if m := c.next(switchboard.TypePong); m.CorrelationID != id {
		c.t.Fatalf("PONG correlation_id = %q, want %q", m.CorrelationID, id)
	}
}
