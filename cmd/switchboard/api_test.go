package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

func TestAPIKeyRequired(t *testing.T) {
	_, ts := startServer(t, testOptions())
	body := `{"topic":"news","payload":{"n":1}}`
	for _, tc := range []struct {
		name   string
		header string
		want   int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong key", "Bearer " + strings.Repeat("x", len(testAPIKey)), http.StatusUnauthorized},
		{"key prefix", "Bearer " + testAPIKey[:len(testAPIKey)-1], http.StatusUnauthorized},
		{"other scheme", "Basic " + testAPIKey, http.StatusUnauthorized},
		{"bare key", testAPIKey, http.StatusUnauthorized},
		{"right key", "Bearer " + testAPIKey, http.StatusOK},
		{"scheme in lower case", "bearer " + testAPIKey, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/api/publish", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			res, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}

	// Every API route is guarded, and the refusal is a JSON error.
	for _, path := range []string{"/api/publish", "/api/broadcast", "/api/users/42/notify"} {
		r := do(t, ts, http.MethodPost, path, "", `{}`)
		if r.status != http.StatusUnauthorized || r.body["error"] != "unauthorized" || r.body["message"] == "" {
			t.Errorf("POST %s without key: %d %s, want 401 unauthorized", path, r.status, r.raw)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("POST %s without key: no WWW-Authenticate header", path)
		}
	}
}

func TestAPIDisabledWithoutKey(t *testing.T) {
	o := testOptions()
	o.APIKey = ""
	_, ts := startServer(t, o)
	r := do(t, ts, http.MethodPost, "/api/publish", "anything", `{"topic":"news"}`)
	if r.status != http.StatusServiceUnavailable || r.body["error"] != "api_disabled" {
		t.Fatalf("got %d %s, want 503 api_disabled", r.status, r.raw)
	}
}

func TestPublishReachesSubscriber(t *testing.T) {
	_, ts := startServer(t, testOptions())
	news := dial(t, ts)
	news.authenticate("42")
	news.subscribe("news")
	sports := dial(t, ts)
	sports.subscribe("sports")

	r := do(t, ts, http.MethodPost, "/api/publish", testAPIKey,
		`{"topic":"news","payload":{"resource":"article","data":{"id":7}},"extra":"ignored"}`)
	if r.status != http.StatusOK {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	m := news.next(switchboard.TypeData, switchboard.TypeEvent)
	if m.Type != switchboard.TypeData || m.Topic != "news" {
		t.Fatalf("got %s on topic %q, want DATA on news", m.Type, m.Topic)
	}
	if m.ID == "" || m.ID != r.body["id"] {
		t.Errorf("message id %q, API answered id %v", m.ID, r.body["id"])
	}
	data, _ := m.payload(t)["data"].(map[string]any)
	if m.payload(t)["resource"] != "article" || data["id"] != float64(7) {
		t.Errorf("payload %s, want the published one", m.Payload)
	}

	// A type of one's own and an empty payload.
	r = do(t, ts, http.MethodPost, "/api/publish", testAPIKey, `{"topic":"news","type":"score.update"}`)
	if r.status != http.StatusOK {
		t.Fatalf("publish: %d %s", r.status, r.raw)
	}
	m = news.next("score.update", switchboard.TypeData)
	if m.Type != "score.update" || m.Topic != "news" || len(m.payload(t)) != 0 {
		t.Errorf("got %s on %q with payload %s, want score.update on news with {}", m.Type, m.Topic, m.Payload)
	}

	// The sports subscriber got nothing of news: its first publication is its own.
	do(t, ts, http.MethodPost, "/api/publish", testAPIKey, `{"topic":"sports","type":"EVENT","payload":{"event":"goal"}}`)
	m = sports.next(switchboard.TypeData, switchboard.TypeEvent, "score.update")
	if m.Topic != "sports" || m.Type != switchboard.TypeEvent {
		t.Fatalf("sports subscriber got %s on %q first, want EVENT on sports", m.Type, m.Topic)
	}
}

func TestNotifyReachesOnlyThatUser(t *testing.T) {
	_, ts := startServer(t, testOptions())
	alice1, alice2, bob := dial(t, ts), dial(t, ts), dial(t, ts)
	alice1.authenticate("alice")
	alice2.authenticate("alice")
	bob.authenticate("bob")

	r := do(t, ts, http.MethodPost, "/api/users/alice/notify", testAPIKey,
		`{"title":"Invoice","message":"for alice","level":"success","actions":[{"id":"open","label":"Open","url":"/invoices/1"}]}`)
	if r.status != http.StatusOK {
		t.Fatalf("notify alice: %d %s", r.status, r.raw)
	}
	if r.body["local_connections"] != float64(2) || r.body["user"] != "alice" {
		t.Errorf("notify answer %s, want user alice with 2 local connections", r.raw)
	}
	for i, c := range []*wsClient{alice1, alice2} {
		p := c.next(switchboard.TypeNotification).payload(t)
		actions, _ := p["actions"].([]any)
		if p["title"] != "Invoice" || p["message"] != "for alice" || p["level"] != "success" || len(actions) != 1 {
			t.Errorf("alice connection %d got %v", i+1, p)
		}
	}

	// Bob's first notification is his own: alice's never reached him.
	if r := do(t, ts, http.MethodPost, "/api/users/bob/notify", testAPIKey, `{"title":"Hi","message":"for bob"}`); r.status != http.StatusOK {
		t.Fatalf("notify bob: %d %s", r.status, r.raw)
	}
	p := bob.next(switchboard.TypeNotification).payload(t)
	if p["message"] != "for bob" || p["level"] != "info" {
		t.Fatalf("bob's first notification is %v, want his own with level info", p)
	}
}

func TestBroadcast(t *testing.T) {
	_, ts := startServer(t, testOptions())
	authed := dial(t, ts)
	authed.authenticate("7")
	anon := dial(t, ts)
	anon.roundTrip() // registered before the broadcast

	r := do(t, ts, http.MethodPost, "/api/broadcast", testAPIKey, `{"type":"EVENT","payload":{"event":"deploy","data":{"v":2}}}`)
	if r.status != http.StatusOK {
		t.Fatalf("broadcast: %d %s", r.status, r.raw)
	}
	for name, c := range map[string]*wsClient{"authenticated": authed, "anonymous": anon} {
		m := c.next(switchboard.TypeEvent, switchboard.TypeData)
		if m.Type != switchboard.TypeEvent || m.Topic != "" || m.payload(t)["event"] != "deploy" || m.ID != r.body["id"] {
			t.Errorf("%s client got %s topic %q payload %s", name, m.Type, m.Topic, m.Payload)
		}
	}

	// Without a type, a broadcast is DATA.
	if r := do(t, ts, http.MethodPost, "/api/broadcast", testAPIKey, `{"payload":{"data":1}}`); r.status != http.StatusOK {
		t.Fatalf("broadcast: %d %s", r.status, r.raw)
	}
	if m := anon.next(switchboard.TypeEvent, switchboard.TypeData); m.Type != switchboard.TypeData {
		t.Errorf("got %s, want DATA", m.Type)
	}
}

func TestBadInput(t *testing.T) {
	o := testOptions()
	o.MaxBodySize = 1024
	_, ts := startServer(t, o)
	big := `{"topic":"news","payload":{"s":"` + strings.Repeat("x", 2048) + `"}}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"invalid JSON", "POST", "/api/publish", `{"topic": "news",`, 400, "invalid_json"},
		{"not an object", "POST", "/api/publish", `["news"]`, 400, "invalid_json"},
		{"empty body", "POST", "/api/publish", ``, 400, "invalid_json"},
		{"trailing data", "POST", "/api/publish", `{"topic":"news"} {"topic":"x"}`, 400, "invalid_json"},
		{"topic of the wrong type", "POST", "/api/publish", `{"topic":5}`, 400, "invalid_json"},
		{"missing topic", "POST", "/api/publish", `{"payload":{"a":1}}`, 400, "missing_topic"},
		{"invalid topic", "POST", "/api/publish", `{"topic":"no spaces allowed"}`, 400, "invalid_topic"},
		{"topic too long", "POST", "/api/publish", `{"topic":"` + strings.Repeat("t", 201) + `"}`, 400, "invalid_topic"},
		{"payload not an object", "POST", "/api/publish", `{"topic":"news","payload":[1,2]}`, 400, "invalid_payload"},
		{"reserved type", "POST", "/api/publish", `{"topic":"news","type":"DISCONNECT"}`, 400, "invalid_type"},
		{"oversized", "POST", "/api/publish", big, 413, "too_large"},
		{"GET on publish", "GET", "/api/publish", ``, 405, "method_not_allowed"},
		{"PUT on broadcast", "PUT", "/api/broadcast", `{}`, 405, "method_not_allowed"},
		{"broadcast with a topic", "POST", "/api/broadcast", `{"topic":"news"}`, 400, "unexpected_topic"},
		{"broadcast payload not an object", "POST", "/api/broadcast", `{"payload":"hi"}`, 400, "invalid_payload"},
		{"notify without text", "POST", "/api/users/42/notify", `{"level":"info"}`, 400, "missing_field"},
		{"notify bad level", "POST", "/api/users/42/notify", `{"title":"t","level":"loud"}`, 400, "invalid_level"},
		{"notify bad action", "POST", "/api/users/42/notify", `{"title":"t","actions":[{"id":"x"}]}`, 400, "invalid_action"},
		{"unknown API route", "POST", "/api/nope", `{}`, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, ts, tc.method, tc.path, testAPIKey, tc.body)
			if r.status != tc.status || r.body["error"] != tc.code {
				t.Fatalf("got %d %s, want %d with error %q", r.status, r.raw, tc.status, tc.code)
			}
			if msg, _ := r.body["message"].(string); msg == "" {
				t.Errorf("no message in %s", r.raw)
			}
			if tc.status == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", r.header.Get("Allow"))
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	_, ts := startServer(t, testOptions())
	r := do(t, ts, http.MethodGet, "/healthz", "", "")
	if r.status != http.StatusOK || r.body["status"] != "ok" || r.body["connections"] != float64(0) {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
	c := dial(t, ts)
	c.roundTrip()
	if r := do(t, ts, http.MethodGet, "/healthz", "", ""); r.body["connections"] != float64(1) {
		t.Fatalf("healthz with one client: %s", r.raw)
	}
	if r := do(t, ts, http.MethodPost, "/healthz", "", ""); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz: %d", r.status)
	}
}

func TestDemoPage(t *testing.T) {
	_, ts := startServer(t, testOptions())
	res, err := ts.Client().Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	page, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{"/switchboard.js", "'/ws'", "/api/dev/token"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("demo page lacks %q", want)
		}
	}
	res2, err := ts.Client().Get(ts.URL + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusNotFound {
		t.Errorf("GET /elsewhere: %d, want 404", res2.StatusCode)
	}
}

func TestDevMode(t *testing.T) {
	o := testOptions()
	o.Dev = true
	o.APIKey, o.JWTSecret = "", ""
	s, ts := startServer(t, o)
	if !s.generatedAPIKey || !s.generatedJWTSecret || s.apiKey == "" || len(s.jwtSecret) == 0 {
		t.Fatalf("dev mode did not generate keys: api %q secret %q", s.apiKey, s.jwtSecret)
	}
	if r := do(t, ts, http.MethodPost, "/api/broadcast", s.apiKey, `{}`); r.status != http.StatusOK {
		t.Fatalf("broadcast with the generated key: %d %s", r.status, r.raw)
	}

	// The dev token endpoint needs no API key; its token verifies with the secret
	// and authenticates a WebSocket connection.
	r := do(t, ts, http.MethodGet, "/api/dev/token?user=42", "", "")
	tok, _ := r.body["token"].(string)
	if r.status != http.StatusOK || tok == "" || r.body["user_id"] != "42" {
		t.Fatalf("dev token: %d %s", r.status, r.raw)
	}
	j, err := auth.NewJWT(auth.JWTConfig{HMACSecret: s.jwtSecret})
	if err != nil {
		t.Fatal(err)
	}
	id, err := j.Authenticate(context.Background(), tok)
	if err != nil || id.UserID != "42" {
		t.Fatalf("dev token does not verify: %v %+v", err, id)
	}
	if r.body["expires_at"] != float64(id.ExpiresAt.Unix()) {
		t.Errorf("expires_at %v, token expires %d", r.body["expires_at"], id.ExpiresAt.Unix())
	}
	c := dial(t, ts)
	msgID := c.send(switchboard.TypeAuthenticate, map[string]any{"auth": map[string]string{"token": tok}})
	if m := c.next(switchboard.TypeAuthenticateSuccess, switchboard.TypeAuthenticateFailure); m.Type != switchboard.TypeAuthenticateSuccess || m.CorrelationID != msgID {
		t.Fatalf("AUTHENTICATE with the dev token: %s %s", m.Type, m.Payload)
	}
	if r := do(t, ts, http.MethodGet, "/api/dev/token", "", ""); r.status != http.StatusBadRequest || r.body["error"] != "missing_user" {
		t.Errorf("dev token without user: %d %s", r.status, r.raw)
	}

	// Dev mode accepts WebSocket connections from any origin.
	if err := dialFromOrigin(ts, "http://elsewhere.example"); err != nil {
		t.Errorf("dev mode refused a foreign origin: %v", err)
	}
}

func TestNoDevMode(t *testing.T) {
	s, ts := startServer(t, testOptions())
	if s.generatedAPIKey || s.generatedJWTSecret {
		t.Fatal("keys generated outside dev mode")
	}
	for _, key := range []string{"", testAPIKey} {
		if r := do(t, ts, http.MethodGet, "/api/dev/token?user=42", key, ""); r.status != http.StatusNotFound {
			t.Errorf("dev token outside dev mode (key %q): %d %s, want 404", key, r.status, r.raw)
		}
	}
	if err := dialFromOrigin(ts, "http://elsewhere.example"); err == nil {
		t.Error("a foreign origin was accepted outside dev mode")
	}

	// Without a JWT key, authentication is off.
	o := testOptions()
	o.JWTSecret = ""
	s2, _ := startServer(t, o)
	if s2.manager.Config().Authenticator != nil || s2.authMode != "none" {
		t.Errorf("authenticator without a key: %v (%s)", s2.manager.Config().Authenticator, s2.authMode)
	}
	o.Config.RequireAuth = true
	if _, err := newServer(o); err == nil {
		t.Error("--require-auth without a JWT key was accepted")
	}
}

// dialFromOrigin opens a WebSocket as a browser on origin would, and closes it.
func dialFromOrigin(ts *httptest.Server, origin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err != nil {
		return err
	}
	return ws.CloseNow()
}
