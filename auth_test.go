package switchboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard/auth"
)

// wpExpiredToken returns a correctly signed token for user that expired an hour ago.
func wpExpiredToken(user string) string {
	now := time.Now().Unix()
	return wpSignHS256(testSecret, nil, map[string]any{"sub": user, "iat": now - 7200, "exp": now - 3600})
}

// wpConnID returns the server-side connection of a client (through CONNECT_ACK).
func wpConnID(t testing.TB, ts *testServer, c *client) *Conn {
	t.Helper()
	id, _ := c.request(TypeConnect, nil, fmt.Sprintf("who-%d", wpSeq.Add(1))).field("client_id").(string)
	conn := ts.m.Conn(id)
	if conn == nil {
		t.Fatalf("no live connection %q", id)
	}
	return conn
}

func TestAuthSuccess(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	c := ts.dial()
	tok := token(t, "42", time.Hour)
	// Both payload shapes: {"auth": {"token"}} and {"token"}.
	for i, payload := range []any{
		map[string]any{"auth": map[string]any{"token": tok}},
		map[string]any{"token": tok},
	} {
		id := fmt.Sprintf("auth-%d", i)
		w := c.request(TypeAuthenticate, payload, id)
		wpWantType(t, w, TypeAuthenticateSuccess)
		wpCheckEnvelope(t, w.raw)
		if w.CorrelationID != id {
			t.Fatalf("correlation_id %q, want %q", w.CorrelationID, id)
		}
		p := wpPayload(t, w)
		if p["user_id"] != "42" {
			t.Fatalf("user_id %v, want 42", p["user_id"])
		}
		if exp := wpTokenClaims(t, tok)["exp"]; p["expires_at"] != exp {
			t.Fatalf("expires_at %v, want the token's exp %v", p["expires_at"], exp)
		}
	}
	conn := wpConnID(t, ts, c)
	if conn.UserID() != "42" || conn.State() != StateAuthenticated {
		t.Fatalf("connection user %q state %s", conn.UserID(), conn.State())
	}
	if ack := c.request(TypeConnect, nil, "c2"); ack.field("authenticated") != true || ack.field("user_id") != "42" {
		t.Fatalf("CONNECT_ACK after AUTHENTICATE: %s", ack.raw)
	}
	if got := ts.m.UserConns("42"); len(got) != 1 || got[0] != conn {
		t.Fatalf("UserConns(42) = %v", got)
	}
}

// Failed AUTHENTICATEs give the documented reasons and leave the socket open for a retry.
func TestAuthFailureReasons(t *testing.T) {
	now := time.Now().Unix()
	cases := []struct {
		name   string
		token  string
		reason string
	}{
		{"not a JWT", "garbage", "malformed"},
		{"three bad segments", "a.b.c", "malformed"},
		{"bad base64", "!!!.???.###", "malformed"},
		{"empty", "", "no_token"},
		{"other secret", wpSignHS256([]byte("another-secret-0123456789abcdefx"), nil, map[string]any{"sub": "42", "exp": now + 3600}), "invalid"},
		{"tampered signature", token(t, "42", time.Hour) + "x", "invalid"},
		{"alg none", wpSignHS256(testSecret, map[string]any{"alg": "none"}, map[string]any{"sub": "42", "exp": now + 3600}), "invalid"},
		{"no sub", wpSignHS256(testSecret, nil, map[string]any{"exp": now + 3600}), "invalid"},
		{"no exp", wpSignHS256(testSecret, nil, map[string]any{"sub": "42"}), "invalid"},
		{"not yet valid", wpSignHS256(testSecret, nil, map[string]any{"sub": "42", "exp": now + 7200, "nbf": now + 3600}), "invalid"},
		{"expired", wpExpiredToken("42"), "expired"},
	}
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := wpDial(t, ts)
			id := fmt.Sprintf("bad-%d", i)
			w := c.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": tc.token}}, id)
			wpWantReason(t, w, TypeAuthenticateFailure, tc.reason)
			wpCheckEnvelope(t, w.raw)
			if w.CorrelationID != id {
				t.Fatalf("correlation_id %q, want %q", w.CorrelationID, id)
			}
			// Still open, still anonymous; a good token then works.
			wpAlive(t, c)
			if conn := wpConnID(t, ts, c); conn.Identity() != nil || conn.State() != StateConnected {
				t.Fatalf("after a failure: identity %v, state %s", conn.Identity(), conn.State())
			}
			if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
				t.Fatalf("good token after a failure: %s", r.raw)
			}
		})
	}
}

// After MaxAuthFailures failed attempts the server sends DISCONNECT and closes with 4001.
func TestAuthMaxFailuresCloses4001(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), MaxAuthFailures: 3})
	c := ts.dial()
	for i := 1; i <= 2; i++ {
		w := c.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": "bad"}}, fmt.Sprintf("f%d", i))
		wpWantReason(t, w, TypeAuthenticateFailure, "malformed")
		wpAlive(t, c)
	}
	w := c.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": wpExpiredToken("42")}}, "f3")
	wpWantReason(t, w, TypeAuthenticateFailure, "expired")
	code, _, frames := c.closed()
	if code != CloseAuthFailed {
		t.Fatalf("close code %d, want 4001", code)
	}
	if len(frames) == 0 || frames[len(frames)-1].Type != TypeDisconnect || frames[len(frames)-1].field("code") != 4001.0 {
		t.Fatalf("frames before the close %v, want DISCONNECT {code: 4001} last", frames)
	}
}

// With RequireAuth, everything but the control messages is refused with ERROR
// unauthorized until the connection authenticates, and the connection stays open.
func TestAuthRequireAuthGate(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true})
	h := func(ctx context.Context, c *Conn, msg *Message) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return c.Reply(msg, msg.Type+"_OK", nil)
	}
	ts.m.Handle(TypeAction, h)
	ts.m.Handle("CHAT", h)
	c := ts.dial()

	refused := []struct {
		typ     string
		payload any
	}{
		{TypeSubscribe, map[string]any{"subscriptions": []string{"news"}}},
		{TypeUnsubscribe, map[string]any{"subscriptions": []string{"news"}}},
		{TypeAction, map[string]any{"action": "x"}},
		{"CHAT", map[string]any{"text": "hi"}},
		{"NOT_REGISTERED", nil},
	}
	for i, r := range refused {
		id := fmt.Sprintf("r%d", i)
		wpWantError(t, c.request(r.typ, r.payload, id), CodeUnauthorized, id)
	}
	// Allowed before authentication.
	wpAlive(t, c)
	c.send(map[string]any{"type": TypePong, "id": "pong-1"}) // no answer expected
	if ack := c.request(TypeConnect, nil, "c1"); ack.Type != TypeConnectAck || ack.field("requires_auth") != true {
		t.Fatalf("CONNECT before auth: %s", ack.raw)
	}
	mu.Lock()
	if calls != 0 {
		t.Fatalf("handlers ran %d times before authentication", calls)
	}
	mu.Unlock()

	// Broadcasts skip unauthenticated connections.
	if err := ts.m.Broadcast(context.Background(), wpData(t, 1)); err != nil {
		t.Fatal(err)
	}
	if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("authenticate: %s", r.raw)
	}
	if err := ts.m.Broadcast(context.Background(), wpData(t, 2)); err != nil {
		t.Fatal(err)
	}
	if d := wpNextData(t, c); wpDataN(d) != 2 {
		t.Fatalf("got %s, want only the broadcast sent after authentication", d.raw)
	}
	if r := c.subscribe("news"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe after auth: %s", r.raw)
	}
	for _, typ := range []string{TypeAction, "CHAT"} {
		if w := c.request(typ, nil, "ok-"+typ); w.Type != typ+"_OK" {
			t.Fatalf("%s after auth: %s", typ, w.raw)
		}
	}
	wpWantError(t, c.request("NOT_REGISTERED", nil, "nr"), CodeUnknownType, "nr")
}

// With RequireAuth, a connection that does not authenticate within AuthTimeout gets ERROR
// unauthorized, DISCONNECT and close 1008; one that authenticated in time stays.
func TestAuthTimeoutClosesUnauthenticated(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true, AuthTimeout: timeout})
	authed := ts.dial()
	if r := authed.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("authenticate: %s", r.raw)
	}
	never := ts.dial()
	failing := ts.dial()
	if r := failing.authenticate("bad"); r.Type != TypeAuthenticateFailure {
		t.Fatalf("bad token: %s", r.raw)
	}

	for name, c := range map[string]*client{"never authenticated": never, "failed authentication": failing} {
		code, _, frames := c.closed()
		if code != ClosePolicyViolation {
			t.Fatalf("%s: close code %d, want 1008", name, code)
		}
		var sawErr, sawDisc bool
		for _, f := range frames {
			switch f.Type {
			case TypeError:
				wpWantError(t, f, CodeUnauthorized, "")
				sawErr = true
			case TypeDisconnect:
				sawDisc = f.field("code") == 1008.0
			}
		}
		if !sawErr || !sawDisc {
			t.Fatalf("%s: frames before the close %v, want ERROR unauthorized and DISCONNECT 1008", name, frames)
		}
	}
	// The deadline has passed for all three; wait a few more sweeps, then check.
	time.Sleep(3 * timeout)
	wpAlive(t, authed)
	if r := authed.subscribe("news"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("authenticated connection after the timeout: %s", r.raw)
	}
}

// A token at the handshake authenticates the connection at once, from any of the three
// places browsers and services can put it.
func TestAuthHandshakeToken(t *testing.T) {
	tok := token(t, "42", time.Hour)
	cases := []struct {
		name     string
		cookie   string // Config.TokenCookie
		opts     dialOpts
		wantUser string
	}{
		{"bearer header", "", dialOpts{header: http.Header{"Authorization": {"Bearer " + tok}}}, "42"},
		{"bearer lower case", "", dialOpts{header: http.Header{"Authorization": {"bearer " + tok}}}, "42"},
		{"query", "", dialOpts{query: "token=" + url.QueryEscape(tok)}, "42"},
		{"cookie", "sb_token", dialOpts{header: http.Header{"Cookie": {"sb_token=" + tok}}}, "42"},
		{"cookie not configured", "", dialOpts{header: http.Header{"Cookie": {"sb_token=" + tok}}}, ""},
		{"other cookie", "sb_token", dialOpts{header: http.Header{"Cookie": {"session=" + tok}}}, ""},
		{"basic auth", "", dialOpts{header: http.Header{"Authorization": {"Basic " + tok}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true, TokenCookie: tc.cookie})
			c := ts.dial(tc.opts)
			ack := c.request(TypeConnect, nil, "c1")
			wpWantType(t, ack, TypeConnectAck)
			p := wpPayload(t, ack)
			if tc.wantUser == "" {
				if p["authenticated"] != false || p["user_id"] != nil {
					t.Fatalf("CONNECT_ACK %s, want an anonymous connection", ack.raw)
				}
				wpWantError(t, c.subscribe("news"), CodeUnauthorized, "-")
				return
			}
			if p["authenticated"] != true || p["user_id"] != tc.wantUser {
				t.Fatalf("CONNECT_ACK %s, want authenticated as %s", ack.raw, tc.wantUser)
			}
			// Authenticated for real: RequireAuth lets it subscribe, its own user topic too.
			if r := c.subscribe("news", "user:42:updates"); r.Type != TypeSubscribeSuccess {
				t.Fatalf("subscribe: %s", r.raw)
			}
			if conn := ts.m.Conn(ack.field("client_id").(string)); conn.UserID() != "42" || conn.State() != StateAuthenticated {
				t.Fatalf("connection user %q state %s", conn.UserID(), conn.State())
			}
		})
	}
}

// A bad handshake token does not refuse the upgrade: the client is told with ERROR
// unauthorized and may still AUTHENTICATE.
func TestAuthBadHandshakeToken(t *testing.T) {
	cases := []struct {
		name   string
		token  string
		reason string
	}{
		{"garbage", "garbage", "malformed"},
		{"expired", wpExpiredToken("42"), "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true})
			c := ts.dial(dialOpts{header: http.Header{"Authorization": {"Bearer " + tc.token}}})
			w := c.read()
			wpWantError(t, w, CodeUnauthorized, "")
			wpCheckEnvelope(t, w.raw)
			if msg, _ := w.field("message").(string); !strings.Contains(msg, tc.reason) {
				t.Fatalf("ERROR message %q does not say %q", msg, tc.reason)
			}
			if ack := c.request(TypeConnect, nil, "c1"); ack.field("authenticated") != false {
				t.Fatalf("CONNECT_ACK %s, want not authenticated", ack.raw)
			}
			if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess || r.field("user_id") != "42" {
				t.Fatalf("AUTHENTICATE after a bad handshake token: %s", r.raw)
			}
			if r := c.subscribe("news"); r.Type != TypeSubscribeSuccess {
				t.Fatalf("subscribe: %s", r.raw)
			}
		})
	}
}

// Shortly before the token expires the client is warned with ERROR token_expiring; without a
// fresh token it is closed with 4001 at expiry.
func TestAuthTokenExpiryCloses4001(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), TokenExpiryWarning: time.Second})
	c := ts.dial()
	if r := c.authenticate(token(t, "42", 2*time.Second)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("authenticate: %s", r.raw)
	}
	w := c.expect(TypeError)
	wpWantError(t, w, CodeTokenExpiring, "")
	wpAlive(t, c) // a warning, not a close
	code, _, frames := c.closed()
	if code != CloseAuthFailed {
		t.Fatalf("close code %d after expiry, want 4001", code)
	}
	var sawUnauth, sawDisc bool
	for _, f := range frames {
		if f.Type == TypeError && f.field("code") == string(CodeUnauthorized) {
			sawUnauth = true
		}
		if f.Type == TypeDisconnect && f.field("code") == 4001.0 {
			sawDisc = true
		}
	}
	if !sawUnauth || !sawDisc {
		t.Fatalf("frames before the close %v, want ERROR unauthorized and DISCONNECT 4001", frames)
	}
}

// A fresh AUTHENTICATE for the same user after the warning extends the session: the
// connection outlives the old token (while a connection that did not refresh is closed).
func TestAuthTokenRefreshExtendsSession(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), TokenExpiryWarning: time.Second})
	short := token(t, "42", 2*time.Second)
	refresher := ts.dial()
	stale := ts.dial()
	for _, c := range []*client{refresher, stale} {
		if r := c.authenticate(short); r.Type != TypeAuthenticateSuccess {
			t.Fatalf("authenticate: %s", r.raw)
		}
	}
	if r := refresher.subscribe("user:42:updates"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe: %s", r.raw)
	}
	wpWantError(t, refresher.expect(TypeError), CodeTokenExpiring, "")
	long := token(t, "42", time.Hour)
	w := refresher.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": long}}, "refresh")
	wpWantType(t, w, TypeAuthenticateSuccess)
	if w.field("expires_at") != wpTokenClaims(t, long)["exp"] {
		t.Fatalf("refresh: expires_at %v, want the new token's", w.field("expires_at"))
	}

	// The stale connection is closed at the old expiry...
	if code, _, _ := stale.closed(); code != CloseAuthFailed {
		t.Fatalf("stale connection closed with %d, want 4001", code)
	}
	// ...and a few sweeps later the refreshed one is still there, subscriptions intact.
	time.Sleep(500 * time.Millisecond)
	wpAlive(t, refresher)
	if err := ts.m.Publish(context.Background(), "user:42:updates", wpData(t, 5)); err != nil {
		t.Fatal(err)
	}
	if d := wpNextData(t, refresher); wpDataN(d) != 5 {
		t.Fatalf("after refresh: %s", d.raw)
	}
}

// Re-authenticating as another user is refused and the identity stays.
func TestAuthUserMismatch(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	c := ts.dial()
	if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("authenticate: %s", r.raw)
	}
	w := c.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": token(t, "7", time.Hour)}}, "as-7")
	wpWantReason(t, w, TypeAuthenticateFailure, "user_mismatch")
	if w.CorrelationID != "as-7" {
		t.Fatalf("correlation_id %q", w.CorrelationID)
	}
	conn := wpConnID(t, ts, c)
	if conn.UserID() != "42" || conn.State() != StateAuthenticated {
		t.Fatalf("after mismatch: user %q state %s, want 42 AUTHENTICATED", conn.UserID(), conn.State())
	}
	if len(ts.m.UserConns("7")) != 0 || len(ts.m.UserConns("42")) != 1 {
		t.Fatalf("UserConns: 7=%d 42=%d", len(ts.m.UserConns("7")), len(ts.m.UserConns("42")))
	}
	// Still user 42 as far as topics go.
	if r := c.subscribe("user:42:updates"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("own topic after mismatch: %s", r.raw)
	}
	wpWantReason(t, c.subscribe("user:7:updates"), TypeSubscribeFailure, "forbidden")
	// The same user again is fine.
	if r := c.authenticate(token(t, "42", 2*time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("same user again: %s", r.raw)
	}
}

// The default topic authorizer reserves user:<id> and user:<id>:… to user <id>.
func TestAuthDefaultTopicAuthorizer(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	u42 := ts.dial()
	u42.authenticate(token(t, "42", time.Hour))
	anon := ts.dial()

	cases := []struct {
		name   string
		c      *client
		topics []string
		ok     bool
		failed []string
	}{
		{"own updates", u42, []string{"user:42:updates"}, true, nil},
		{"own root", u42, []string{"user:42"}, true, nil},
		{"own deep", u42, []string{"user:42:a:b"}, true, nil},
		{"public", u42, []string{"news"}, true, nil},
		{"other user's updates", u42, []string{"user:7:updates"}, false, []string{"user:7:updates"}},
		{"other user's root", u42, []string{"user:7"}, false, []string{"user:7"}},
		{"prefix of another id", u42, []string{"user:420"}, false, []string{"user:420"}},
		{"mixed batch", u42, []string{"news.2", "user:7:updates", "user:42:x"}, false, []string{"user:7:updates"}},
		{"anonymous user root", anon, []string{"user:42"}, false, []string{"user:42"}},
		{"anonymous user topic", anon, []string{"user:42:updates"}, false, []string{"user:42:updates"}},
		{"anonymous public", anon, []string{"news"}, true, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.t = t
			id := fmt.Sprintf("t%d", i)
			w := tc.c.request(TypeSubscribe, map[string]any{"subscriptions": tc.topics}, id)
			if tc.ok {
				wpWantType(t, w, TypeSubscribeSuccess)
				return
			}
			wpWantReason(t, w, TypeSubscribeFailure, "forbidden")
			wpCheckEnvelope(t, w.raw)
			p := wpPayload(t, w)
			if fmt.Sprint(p["subscriptions"]) != fmt.Sprint(tc.failed) {
				t.Fatalf("subscriptions %v, want the refused topics %v", p["subscriptions"], tc.failed)
			}
			errs, _ := p["errors"].(map[string]any)
			for _, f := range tc.failed {
				if errs[f] != "forbidden" {
					t.Fatalf("errors %v, want %s: forbidden", errs, f)
				}
			}
		})
	}
	u42.t, anon.t = t, t
	// All or nothing: nothing of the mixed batch was subscribed.
	conn := wpConnID(t, ts, u42)
	for _, s := range conn.Subscriptions() {
		if s == "news.2" || s == "user:42:x" {
			t.Fatalf("topic %s of a refused batch was subscribed: %v", s, conn.Subscriptions())
		}
	}
}

// A custom TopicAuthorizer replaces the default one and sees the identity.
func TestAuthCustomTopicAuthorizer(t *testing.T) {
	type call struct{ user, topic string }
	var mu sync.Mutex
	var calls []call
	adminsOnly := func(ctx context.Context, id *auth.Identity, topic string) error {
		user := ""
		if id != nil {
			user = id.UserID
		}
		mu.Lock()
		calls = append(calls, call{user, topic})
		mu.Unlock()
		if strings.HasPrefix(topic, "admin:") && (id == nil || id.Claims["role"] != "admin") {
			return fmt.Errorf("%w: admins only", auth.ErrForbidden)
		}
		return nil
	}
	ts := startServer(t, Config{Authenticator: newJWT(t), TopicAuthorizer: adminsOnly})
	admTok, err := auth.NewHMACToken(testSecret, "1", time.Hour, map[string]any{"role": "admin"})
	if err != nil {
		t.Fatal(err)
	}
	admin := ts.dial()
	admin.authenticate(admTok)
	member := ts.dial()
	member.authenticate(token(t, "42", time.Hour))
	anon := ts.dial()

	if r := admin.subscribe("admin:audit"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("admin: %s", r.raw)
	}
	wpWantReason(t, member.subscribe("admin:audit"), TypeSubscribeFailure, "forbidden")
	wpWantReason(t, anon.subscribe("admin:audit"), TypeSubscribeFailure, "forbidden")
	// The default reservation of user topics is gone: this authorizer allows them.
	if r := member.subscribe("user:7:updates"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("custom authorizer should replace the default: %s", r.raw)
	}
	mu.Lock()
	defer mu.Unlock()
	want := fmt.Sprint([]call{{"1", "admin:audit"}, {"42", "admin:audit"}, {"", "admin:audit"}, {"42", "user:7:updates"}})
	if fmt.Sprint(calls) != want {
		t.Fatalf("authorizer calls %v, want %v", calls, want)
	}
}

// BroadcastToUsers reaches every connection of the given users and no one else.
func TestAuthBroadcastToUsers(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	tab1 := ts.dial()
	tab1.authenticate(token(t, "42", time.Hour))
	tab2 := ts.dial(dialOpts{header: http.Header{"Authorization": {"Bearer " + token(t, "42", time.Hour)}}})
	u7 := ts.dial()
	u7.authenticate(token(t, "7", time.Hour))
	anon := ts.dial()
	wpAlive(t, anon) // a round trip: the connection is registered
	wpAlive(t, tab2)
	waitFor(t, "two connections of user 42", func() bool { return len(ts.m.UserConns("42")) == 2 })

	if err := ts.m.BroadcastToUsers(context.Background(), wpData(t, 1), "42"); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.BroadcastToUsers(context.Background(), wpData(t, 2), "7", "42", "nobody"); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.Broadcast(context.Background(), wpData(t, 3)); err != nil { // a marker for all
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		c    *client
		want []int
	}{
		"tab1": {tab1, []int{1, 2, 3}}, "tab2": {tab2, []int{1, 2, 3}},
		"user 7": {u7, []int{2, 3}}, "anonymous": {anon, []int{3}},
	} {
		var got []int
		for len(got) < len(tc.want) {
			got = append(got, wpDataN(wpNextData(t, tc.c)))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("%s got %v, want %v", name, got, tc.want)
		}
	}
	if err := ts.m.BroadcastToUsers(context.Background(), wpData(t, 4)); err != nil {
		t.Fatalf("no users: %v", err)
	}
}

// MaxConnsPerUser caps a user's connections: a further handshake gets HTTP 429, a further
// AUTHENTICATE gets AUTHENTICATE_FAILURE too_many_connections.
func TestAuthMaxConnsPerUser(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), MaxConnsPerUser: 2})
	bearer := dialOpts{header: http.Header{"Authorization": {"Bearer " + token(t, "42", time.Hour)}}}
	first := ts.dial(bearer)
	ts.dial(dialOpts{query: "token=" + token(t, "42", time.Hour)})
	waitFor(t, "two connections of user 42", func() bool { return len(ts.m.UserConns("42")) == 2 })

	_, resp, err := ts.tryDial(bearer)
	if err == nil {
		t.Fatal("third handshake-token connection was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third handshake: %v, response %v, want HTTP 429", err, resp)
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["error"] != "too_many_connections" {
		t.Fatalf("429 body %v (%v), want error too_many_connections", body, err)
	}

	third := ts.dial()
	w := third.request(TypeAuthenticate, map[string]any{"auth": map[string]any{"token": token(t, "42", time.Hour)}}, "a3")
	wpWantReason(t, w, TypeAuthenticateFailure, "too_many_connections")
	wpAlive(t, third)
	if conn := wpConnID(t, ts, third); conn.Identity() != nil {
		t.Fatalf("refused connection has identity %v", conn.Identity())
	}
	// Other users are not affected.
	if r := third.authenticate(token(t, "7", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("user 7: %s", r.raw)
	}
	// Once a connection of 42 leaves, another may join.
	first.send(`{"type":"DISCONNECT"}`)
	first.closed()
	waitFor(t, "one connection of user 42", func() bool { return len(ts.m.UserConns("42")) == 1 })
	fourth := ts.dial()
	if r := fourth.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("after one left: %s", r.raw)
	}
}

func TestAuthDisabled(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial()
	if ack := c.request(TypeConnect, nil, "c"); ack.field("requires_auth") != false {
		t.Fatalf("CONNECT_ACK %s", ack.raw)
	}
	w := c.authenticate(token(t, "42", time.Hour))
	wpWantReason(t, w, TypeAuthenticateFailure, "auth_disabled")
	wpAlive(t, c)
	// A handshake token is ignored without an authenticator.
	c2 := ts.dial(dialOpts{header: http.Header{"Authorization": {"Bearer " + token(t, "42", time.Hour)}}})
	if ack := c2.request(TypeConnect, nil, "c"); ack.field("authenticated") != false {
		t.Fatalf("CONNECT_ACK %s", ack.raw)
	}
}

// Every claim of the token reaches handlers through c.Identity().
func TestAuthClaimsReachHandlers(t *testing.T) {
	extra := map[string]any{"role": "admin", "tenant": "acme", "perms": []any{"read", "write"}, "level": 3.0, "meta": map[string]any{"beta": true}}
	tok, err := auth.NewHMACToken(testSecret, "42", time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	ts.m.Handle("WHOAMI", func(ctx context.Context, c *Conn, msg *Message) error {
		id := c.Identity()
		if id == nil {
			return Errorf(CodeUnauthorized, "anonymous")
		}
		return c.Reply(msg, "WHOAMI_RESULT", map[string]any{"user": id.UserID, "claims": id.Claims, "expires": id.ExpiresAt.Unix()})
	})
	for _, via := range []string{"AUTHENTICATE", "handshake"} {
		t.Run(via, func(t *testing.T) {
			var c *client
			if via == "handshake" {
				c = wpDial(t, ts, dialOpts{query: "token=" + tok})
			} else {
				c = wpDial(t, ts)
				c.authenticate(tok)
			}
			w := c.request("WHOAMI", nil, "who")
			wpWantType(t, w, "WHOAMI_RESULT")
			p := wpPayload(t, w)
			claims, _ := p["claims"].(map[string]any)
			for k, v := range extra {
				if fmt.Sprint(claims[k]) != fmt.Sprint(v) {
					t.Errorf("claim %s = %v, want %v", k, claims[k], v)
				}
			}
			std := wpTokenClaims(t, tok)
			for _, k := range []string{"sub", "exp", "iat"} {
				if claims[k] != std[k] {
					t.Errorf("claim %s = %v, want %v", k, claims[k], std[k])
				}
			}
			if p["user"] != "42" || p["expires"] != std["exp"] {
				t.Errorf("user %v expires %v", p["user"], p["expires"])
			}
		})
	}
}

// A connection that refreshes its token stays authenticated meanwhile: with RequireAuth,
// publications sent while the authenticator checks the fresh token still reach it ("a
// fresh AUTHENTICATE … extends the session without touching its subscriptions").
func TestAuthRefreshKeepsDelivering(t *testing.T) {
	jwt := newJWT(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := token(t, "42", 2*time.Hour) // the token whose check takes a while
	a := auth.AuthenticatorFunc(func(ctx context.Context, tok string) (*auth.Identity, error) {
		if tok == slow {
			close(entered)
			<-release
		}
		return jwt.Authenticate(ctx, tok)
	})
	ts := startServer(t, Config{Authenticator: a, RequireAuth: true})
	c := ts.dial()
	if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess {
		t.Fatalf("authenticate: %s", r.raw)
	}
	if r := c.subscribe("user:42:orders"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("subscribe: %s", r.raw)
	}
	c.send(map[string]any{"type": TypeAuthenticate, "id": "refresh", "payload": map[string]any{"token": slow}})
	<-entered
	// The refresh is under way: the connection still has its identity.
	if err := ts.m.Publish(context.Background(), "user:42:orders", wpData(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.BroadcastToUsers(context.Background(), wpData(t, 2), "42"); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.Broadcast(context.Background(), wpData(t, 3)); err != nil {
		t.Fatal(err)
	}
	close(release)
	var got []int
	for {
		w := c.read()
		if w.Type == TypeAuthenticateSuccess {
			break
		}
		got = append(got, wpDataN(w))
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("publications during the token refresh: got %v, want [1 2 3]", got)
	}
}
