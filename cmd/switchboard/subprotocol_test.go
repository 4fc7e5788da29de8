package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
)

// dialWith opens a WebSocket connection to ts's /ws asking for the given subprotocols.
func dialWith(t *testing.T, ts *httptest.Server, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws",
		&websocket.DialOptions{Subprotocols: subprotocols})
	if ws != nil {
		t.Cleanup(func() { _ = ws.CloseNow() })
	}
	return ws, res, err
}

func TestSubprotocolNegotiated(t *testing.T) {
	o := testOptions()
	got := make(chan string, 1)
	o.Config.OnConnect = func(c *switchboard.Conn) { got <- c.Subprotocol() }
	_, ts := startServer(t, o)

	ws, _, err := dialWith(t, ts, switchboard.SubprotocolV1Batch)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if p := ws.Subprotocol(); p != switchboard.SubprotocolV1Batch {
		t.Errorf("client negotiated %q, want %q", p, switchboard.SubprotocolV1Batch)
	}
	if p := <-got; p != switchboard.SubprotocolV1Batch {
		t.Errorf("server Conn.Subprotocol() = %q, want %q", p, switchboard.SubprotocolV1Batch)
	}

	// Without --require-subprotocol, a client asking for none is served.
	ws, _, err = dialWith(t, ts)
	if err != nil {
		t.Fatalf("dial without subprotocol: %v", err)
	}
	if p := <-got; p != "" || ws.Subprotocol() != "" {
		t.Errorf("no subprotocol asked: server %q, client %q", p, ws.Subprotocol())
	}
}

func TestRequireSubprotocol(t *testing.T) {
	o := testOptions()
	o.RequireSubprotocol = true
	_, ts := startServer(t, o)

	for _, offered := range [][]string{nil, {"chat.v2"}} {
		_, res, err := dialWith(t, ts, offered...)
		if err == nil {
			t.Fatalf("offering %q: dial succeeded, want HTTP 400", offered)
		}
		if res == nil || res.StatusCode != http.StatusBadRequest {
			t.Fatalf("offering %q: %v (response %v), want HTTP 400", offered, err, res)
		}
	}
	ws, _, err := dialWith(t, ts, "chat.v2", switchboard.SubprotocolV1)
	if err != nil {
		t.Fatalf("dial with %s: %v", switchboard.SubprotocolV1, err)
	}
	if p := ws.Subprotocol(); p != switchboard.SubprotocolV1 {
		t.Errorf("negotiated %q, want %q", p, switchboard.SubprotocolV1)
	}
	c := &wsClient{t: t, ws: ws}
	c.roundTrip() // the endpoint speaks the protocol
}
