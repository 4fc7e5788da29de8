package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The app serves wss:// as well: over TLS, a front end subscribes with {} and receives a
// notification posted to the REST API, in the exact {type, data} form.
func TestNotifyOverTLS(t *testing.T) {
	a := newApp(appConfig{Step: 5 * time.Millisecond})
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
		srv.Close()
	})
	client := srv.Client() // trusts the test server's certificate
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/ws", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// The subscription is in place once the aggregator counts the front end.
	for a.agg.Subscribers() == 0 {
		if ctx.Err() != nil {
			t.Fatal("front end never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := client.Post(srv.URL+"/api/notify", "application/json",
		strings.NewReader(`{"type":"missing_api_key","data":{"service":"etherscan"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /api/notify over https: %d", resp.StatusCode)
	}
	_, raw, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	typ, data := exactFrame(t, raw)
	if typ != "missing_api_key" || string(data) != `{"service":"etherscan"}` {
		t.Fatalf("got %s", raw)
	}
}
