package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboardrt/switchboard"
)

// devOptions returns test options with dev mode on (and the fixed test keys).
func devOptions() options {
	o := testOptions()
	o.Dev = true
	return o
}

// postOrigin POSTs a JSON body with no API key and, if origin is not "", an Origin
// header, and decodes the JSON answer.
func postOrigin(t *testing.T, url, origin, body string) apiResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := apiResult{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("POST %s: body is not JSON: %s", url, raw)
	}
	return r
}

func TestClientScript(t *testing.T) {
	want, err := os.ReadFile("../../clients/js/index.js")
	if err != nil {
		t.Fatal(err)
	}
	// Served in and outside dev mode: it is the public client.
	for name, o := range map[string]options{"dev": devOptions(), "production": testOptions()} {
		t.Run(name, func(t *testing.T) {
			_, ts := startServer(t, o)
			res, err := ts.Client().Get(ts.URL + "/switchboard.js")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET /switchboard.js: %d", res.StatusCode)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("GET /switchboard.js served %d bytes that differ from clients/js/index.js (%d bytes)", len(got), len(want))
			}
			if ct := res.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache (revalidate on every load in development)", cc)
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/switchboard.js", nil)
			req.Header.Set("If-None-Match", etag)
			res, err = ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with the ETag: %d, want 304", res.StatusCode)
			}
		})
	}
}

func TestDemoPageUsesClient(t *testing.T) {
	_, ts := startServer(t, devOptions())
	res, err := ts.Client().Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`<script type="module">`, `from '/switchboard.js'`, `new Switchboard('/ws'`,
		"/api/dev/token", "/api/dev/publish", "/api/dev/notify", `'ACTION'`,
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("demo page lacks %q", want)
		}
	}
	// Everything is embedded: no script, style, image or font from elsewhere.
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	if m := external.Find(page); m != nil {
		t.Errorf("demo page loads an external asset: %s", m)
	}
}

func TestDevPublishAndNotify(t *testing.T) {
	_, ts := startServer(t, devOptions())
	alice := dial(t, ts)
	alice.authenticate("1")
	alice.subscribe("news")
	bob := dial(t, ts)
	bob.authenticate("2")
	bob.subscribe("news")

	// Publish without the API key, from the server's own page.
	r := postOrigin(t, ts.URL+"/api/dev/publish", ts.URL, `{"topic":"news","type":"EVENT","payload":{"event":"hello"}}`)
	if r.status != http.StatusOK || r.body["topic"] != "news" {
		t.Fatalf("dev publish: %d %s", r.status, r.raw)
	}
	for _, c := range []*wsClient{alice, bob} {
		if m := c.next(switchboard.TypeEvent); m.Topic != "news" || m.payload(t)["event"] != "hello" {
			t.Fatalf("publication: %s %s", m.Topic, m.Payload)
		}
	}

	// Notify user 2 only (the user as a number, and without an Origin header, as curl).
	r = postOrigin(t, ts.URL+"/api/dev/notify", "", `{"user":2,"title":"Hi bob","message":"only you","level":"warning"}`)
	if r.status != http.StatusOK || r.body["user"] != "2" || r.body["local_connections"] != float64(1) {
		t.Fatalf("dev notify: %d %s", r.status, r.raw)
	}
	m := bob.next(switchboard.TypeNotification)
	if p := m.payload(t); p["title"] != "Hi bob" || p["message"] != "only you" || p["level"] != "warning" {
		t.Fatalf("notification: %s", m.Payload)
	}
	// Alice got nothing: the next message she reads is the answer to her PING.
	alice.send(switchboard.TypePing, nil)
	if m := alice.next(switchboard.TypePong, switchboard.TypeNotification); m.Type != switchboard.TypePong {
		t.Fatalf("alice received %s %s", m.Type, m.Payload)
	}

	for _, tc := range []struct {
		path, origin, body string
		status             int
		code               string
	}{
		{"/api/dev/notify", "", `{"title":"no user"}`, http.StatusBadRequest, "missing_user"},
		{"/api/dev/notify", "", `{"user":"2"}`, http.StatusBadRequest, "missing_field"},
		{"/api/dev/notify", "", `{"user":"2","title":"x","level":"loud"}`, http.StatusBadRequest, "invalid_level"},
		{"/api/dev/notify", "", `{"user":true,"title":"x"}`, http.StatusBadRequest, "invalid_json"},
		{"/api/dev/publish", "", `{"payload":{}}`, http.StatusBadRequest, "missing_topic"},
		{"/api/dev/publish", "", `{"topic":"news","type":"PONG"}`, http.StatusBadRequest, "invalid_type"},
		{"/api/dev/publish", "", `not json`, http.StatusBadRequest, "invalid_json"},
		// Another site open in the developer's browser cannot post here.
		{"/api/dev/publish", "http://evil.example", `{"topic":"news"}`, http.StatusForbidden, "cross_origin"},
		{"/api/dev/notify", "null", `{"user":"2","title":"x"}`, http.StatusForbidden, "cross_origin"},
	} {
		r := postOrigin(t, ts.URL+tc.path, tc.origin, tc.body)
		if r.status != tc.status || r.body["error"] != tc.code {
			t.Errorf("POST %s %s (Origin %q): %d %s, want %d %s", tc.path, tc.body, tc.origin, r.status, r.raw, tc.status, tc.code)
		}
	}
	if r := do(t, ts, http.MethodGet, "/api/dev/publish", "", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/dev/publish: %d", r.status)
	}

	// The regular API still wants the key in dev mode.
	if r := do(t, ts, http.MethodPost, "/api/publish", "", `{"topic":"news"}`); r.status != http.StatusUnauthorized {
		t.Errorf("POST /api/publish without key in dev mode: %d %s", r.status, r.raw)
	}
	if r := do(t, ts, http.MethodPost, "/api/users/2/notify", "", `{"title":"x"}`); r.status != http.StatusUnauthorized {
		t.Errorf("POST /api/users/2/notify without key in dev mode: %d %s", r.status, r.raw)
	}
}

func TestDevRoutesOnlyInDevMode(t *testing.T) {
	_, ts := startServer(t, testOptions())
	for _, path := range []string{"/api/dev/publish", "/api/dev/notify"} {
		for _, key := range []string{"", testAPIKey} {
			r := do(t, ts, http.MethodPost, path, key, `{"topic":"news","user":"1","title":"x"}`)
			if r.status != http.StatusNotFound {
				t.Errorf("POST %s outside dev mode (key %q): %d %s, want 404", path, key, r.status, r.raw)
			}
		}
	}
	// No demo ACTION handler either.
	c := dial(t, ts)
	id := c.send(switchboard.TypeAction, map[string]any{"action": "echo"})
	m := c.next(switchboard.TypeActionResult, switchboard.TypeError)
	if m.Type != switchboard.TypeError || m.CorrelationID != id || m.payload(t)["code"] != "unknown_type" {
		t.Fatalf("ACTION outside dev mode: %s %s", m.Type, m.Payload)
	}
}

func TestDemoAction(t *testing.T) {
	_, ts := startServer(t, devOptions())
	c := dial(t, ts)
	c.authenticate("1")

	id := c.send(switchboard.TypeAction, map[string]any{"action": "echo", "text": "hello", "n": 3})
	m := c.next(switchboard.TypeActionResult, switchboard.TypeError)
	if m.Type != switchboard.TypeActionResult || m.CorrelationID != id {
		t.Fatalf("echo: %s %s (correlation %q, want %q)", m.Type, m.Payload, m.CorrelationID, id)
	}
	p := m.payload(t)
	echo, _ := p["echo"].(map[string]any)
	if p["ok"] != true || p["action"] != "echo" || p["user_id"] != "1" || echo["text"] != "hello" || echo["n"] != float64(3) {
		t.Fatalf("echo result: %s", m.Payload)
	}

	for payload, want := range map[string]string{
		`{"action":"launch"}`: `unknown action "launch"`,
		`{}`:                  `no "action"`,
		`{"action":7}`:        `must be an object such as`,
	} {
		id := c.send(switchboard.TypeAction, json.RawMessage(payload))
		m := c.next(switchboard.TypeActionResult, switchboard.TypeError)
		p := m.payload(t)
		msg, _ := p["message"].(string)
		if m.Type != switchboard.TypeError || m.CorrelationID != id || p["code"] != "bad_message" || !strings.Contains(msg, want) {
			t.Errorf("ACTION %s: %s %s, want ERROR bad_message with %q", payload, m.Type, m.Payload, want)
		}
	}

	// On an anonymous connection the user is null.
	anon := dial(t, ts)
	anon.send(switchboard.TypeAction, map[string]any{"action": "echo"})
	if m := anon.next(switchboard.TypeActionResult, switchboard.TypeError); m.Type != switchboard.TypeActionResult || !strings.Contains(string(m.Payload), `"user_id":null`) {
		t.Fatalf("anonymous echo: %s %s", m.Type, m.Payload)
	}
}
