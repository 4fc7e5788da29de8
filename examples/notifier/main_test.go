package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func startApp(t *testing.T) (*app, *httptest.Server) {
	t.Helper()
	a := newApp(appConfig{Step: 5 * time.Millisecond, Origins: []string{"localhost:*"}})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
		srv.Close()
	})
	return a, srv
}

func post(t *testing.T, srv *httptest.Server, path, body string) int {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// exactFrame decodes a frame that must hold exactly the keys type and data.
func exactFrame(t *testing.T, raw []byte) (string, json.RawMessage) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || len(keys) != 2 || keys["type"] == nil || keys["data"] == nil {
		t.Fatalf("frame %s: want exactly type and data (%v)", raw, err)
	}
	var typ string
	_ = json.Unmarshal(keys["type"], &typ)
	return typ, keys["data"]
}

func waitJob(t *testing.T, a *app) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		running := a.running
		a.mu.Unlock()
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("job did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jobTypes are the types the job sends, in order.
var jobTypes = []string{
	"db_upgrade_status", "db_upgrade_status", "db_upgrade_status", "db_upgrade_status",
	"data_migration_status", "data_migration_status",
	"legacy", "legacy", "refresh_balances", "missing_api_key",
	"new_evm_token_detected", "database_upload_result",
}

func checkJob(t *testing.T, frames [][]byte) {
	t.Helper()
	if len(frames) != len(jobTypes) {
		t.Fatalf("got %d notifications, want %d", len(frames), len(jobTypes))
	}
	for i, raw := range frames {
		typ, data := exactFrame(t, raw)
		if typ != jobTypes[i] {
			t.Fatalf("notification %d: got %s, want type %s", i, raw, jobTypes[i])
		}
		switch {
		case i == 3 && !strings.Contains(string(data), `"current_step":4`):
			t.Errorf("last upgrade step: %s", data)
		case i == 5 && !strings.Contains(string(data), `"description":null`):
			t.Errorf("migration step without description: %s", data)
		case typ == "new_evm_token_detected" && data[0] != '[':
			t.Errorf("tokens are not a list: %s", data)
		}
	}
}

// TestBacklogThenLive starts the job with no front end, connects after it has finished,
// receives the whole backlog in order, then a live POST /api/notify.
func TestBacklogThenLive(t *testing.T) {
	a, srv := startApp(t)
	if code := post(t, srv, "/api/job/start", ""); code != http.StatusAccepted {
		t.Fatalf("job start: %d", code)
	}
	waitJob(t, a)
	if n := a.agg.Pending(); n != len(jobTypes) {
		t.Fatalf("pending %d, want %d", n, len(jobTypes))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for range jobTypes {
		_, raw, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, raw)
	}
	checkJob(t, frames)

	body := `{"type": "missing_api_key", "data": {"service": "etherscan", "location": "optimism"}}`
	if code := post(t, srv, "/api/notify", body); code != http.StatusAccepted {
		t.Fatalf("notify: %d", code)
	}
	_, raw, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"type":"missing_api_key","data":{"service":"etherscan","location":"optimism"}}` {
		t.Errorf("got %s", raw)
	}
	if code := post(t, srv, "/api/notify", `{"type": "Not-Snake", "data": {}}`); code != http.StatusBadRequest {
		t.Errorf("bad type: %d", code)
	}
}

// TestPolling drains the job's notifications over REST.
func TestPolling(t *testing.T) {
	a, srv := startApp(t)
	post(t, srv, "/api/job/start", "")
	waitJob(t, a)
	resp, err := http.Get(srv.URL + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, len(list))
	for i := range list {
		frames[i] = list[i]
	}
	checkJob(t, frames)
	if n := a.agg.Pending(); n != 0 {
		t.Errorf("pending %d after the drain", n)
	}
}
