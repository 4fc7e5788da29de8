package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboardrt/switchboard"
)

var testSecret = []byte("notifications-test-secret-0123456789")

// server is the example app behind a real HTTP server on 127.0.0.1.
type server struct {
	t    *testing.T
	app  *app
	http *httptest.Server
}

func startServer(t *testing.T) *server {
	t.Helper()
	a := newApp(testSecret)
	hs := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil && !errors.Is(err, switchboard.ErrShutdown) {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return &server{t: t, app: a, http: hs}
}

// do sends an HTTP request and decodes the JSON answer into out (when not nil).
func (s *server) do(method, path, body string, out any) int {
	s.t.Helper()
	req, err := http.NewRequest(method, s.http.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatalf("%s %s: decoding answer: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// token gets a demo token for user from GET /token.
func (s *server) token(user string) string {
	s.t.Helper()
	var out struct {
		Token   string `json:"token"`
		UserID  string `json:"user_id"`
		Warning string `json:"warning"`
	}
	if code := s.do("GET", "/token?user="+user, "", &out); code != http.StatusOK {
		s.t.Fatalf("GET /token: status %d", code)
	}
	if out.Token == "" || out.UserID != user || !strings.Contains(out.Warning, "demo only") {
		s.t.Fatalf("GET /token: %+v", out)
	}
	return out.Token
}

// frame is a message as a third-party client sees it on the wire.
type frame struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	ID            string          `json:"id"`
	CorrelationID string          `json:"correlation_id"`
	Topic         string          `json:"topic"`

	raw []byte
}

func (f frame) payload(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(f.Payload, v); err != nil {
		t.Fatalf("payload of %s: %v", f.raw, err)
	}
}

// client is a hand-written WebSocket client speaking wire protocol v1.
type client struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
}

func (s *server) dial(name string) *client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(s.http.URL, "http") + "/ws"
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		s.t.Fatalf("dial %s: %v", name, err)
	}
	s.t.Cleanup(func() { ws.CloseNow() })
	return &client{t: s.t, name: name, ws: ws}
}

func (c *client) send(typ, id string, payload any) {
	c.t.Helper()
	msg := map[string]any{"type": typ, "id": id}
	if payload != nil {
		msg["payload"] = payload
	}
	b, err := json.Marshal(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.name, err)
	}
}

// next returns the next frame, failing the test if none comes within 5 seconds.
func (c *client) next() frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("%s: got a binary frame", c.name)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("%s: frame %s is not a JSON object: %v", c.name, b, err)
	}
	f.raw = b
	return f
}

// reply returns the answer to the request with the given id, failing on any other frame.
func (c *client) reply(id string) frame {
	c.t.Helper()
	f := c.next()
	if f.CorrelationID != id {
		c.t.Fatalf("%s: want the reply to %q, got %s", c.name, id, f.raw)
	}
	return f
}

// request sends a message and returns its reply.
func (c *client) request(typ, id string, payload any) frame {
	c.t.Helper()
	c.send(typ, id, payload)
	return c.reply(id)
}

func (c *client) authenticate(token, user string) {
	c.t.Helper()
	r := c.request("AUTHENTICATE", "auth-"+c.name, map[string]any{"auth": map[string]string{"token": token}})
	var p struct {
		UserID string `json:"user_id"`
	}
	r.payload(c.t, &p)
	if r.Type != switchboard.TypeAuthenticateSuccess || p.UserID != user {
		c.t.Fatalf("%s: AUTHENTICATE: %s", c.name, r.raw)
	}
}

func (c *client) subscribe(topics ...string) frame {
	c.t.Helper()
	return c.request("SUBSCRIBE", "sub-"+c.name+"-"+strings.Join(topics, ","), map[string]any{"subscriptions": topics})
}

// expectError checks that f is ERROR with the given code.
func expectError(t *testing.T, f frame, code switchboard.ErrorCode) {
	t.Helper()
	var p struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	f.payload(t, &p)
	if f.Type != switchboard.TypeError || p.Code != string(code) || p.Message == "" {
		t.Fatalf("want ERROR %s, got %s", code, f.raw)
	}
}

// login connects user, authenticates it and subscribes it to its orders and the feed.
func (s *server) login(user string) *client {
	s.t.Helper()
	c := s.dial("user" + user)
	c.authenticate(s.token(user), user)
	if r := c.subscribe(ordersTopic(user), feedTopic); r.Type != switchboard.TypeSubscribeSuccess {
		s.t.Fatalf("%s: SUBSCRIBE: %s", c.name, r.raw)
	}
	return c
}

func (s *server) createOrder(user, item string) order {
	s.t.Helper()
	var o order
	body, _ := json.Marshal(map[string]string{"user_id": user, "item": item})
	if code := s.do("POST", "/orders", string(body), &o); code != http.StatusCreated {
		s.t.Fatalf("POST /orders: status %d", code)
	}
	if o.ID == "" || o.UserID != user || o.Item != item || o.Status != statusPlaced {
		s.t.Fatalf("POST /orders: %+v", o)
	}
	return o
}

func TestOrderNotifications(t *testing.T) {
	s := startServer(t)
	u42 := s.login("42")
	u7 := s.login("7")

	// The default topic authorizer keeps user 7 out of user 42's topics.
	r := u7.subscribe(ordersTopic("42"))
	var fail struct {
		Subscriptions []string `json:"subscriptions"`
		Reason        string   `json:"reason"`
	}
	r.payload(t, &fail)
	if r.Type != switchboard.TypeSubscribeFailure || fail.Reason != "forbidden" ||
		len(fail.Subscriptions) != 1 || fail.Subscriptions[0] != ordersTopic("42") {
		t.Fatalf("user 7 subscribing to user 42's orders: %s", r.raw)
	}

	o := s.createOrder("42", "blue mug")

	// User 42 gets the notification, the order on its topic and the feed event, in any order.
	var gotNote, gotData, gotEvent bool
	for !(gotNote && gotData && gotEvent) {
		f := u42.next()
		switch {
		case f.Type == switchboard.TypeNotification && !gotNote:
			gotNote = true
			var n switchboard.Notification
			f.payload(t, &n)
			if n.Title != "Order received" || n.Level != switchboard.LevelSuccess ||
				!strings.Contains(n.Message, "blue mug") || !strings.Contains(n.Message, o.ID) {
				t.Errorf("notification: %s", f.raw)
			}
			if f.Topic != "" {
				t.Errorf("a notification to a user should carry no topic: %s", f.raw)
			}
		case f.Type == switchboard.TypeData && f.Topic == ordersTopic("42") && !gotData:
			gotData = true
			var p struct {
				Resource string `json:"resource"`
				Data     order  `json:"data"`
			}
			f.payload(t, &p)
			if p.Resource != "order" || p.Data.ID != o.ID || p.Data.UserID != "42" ||
				p.Data.Item != "blue mug" || p.Data.Status != statusPlaced {
				t.Errorf("DATA: %s", f.raw)
			}
		case f.Type == switchboard.TypeEvent && f.Topic == feedTopic && !gotEvent:
			gotEvent = true
			checkFeedEvent(t, f, "blue mug")
		default:
			t.Fatalf("user 42: unexpected frame %s", f.raw)
		}
	}

	// User 7 gets the feed event and nothing else: the PONG to a PING sent after the event
	// must be the next frame, so nothing meant for user 42 was queued for user 7.
	f := u7.next()
	if f.Type != switchboard.TypeEvent || f.Topic != feedTopic {
		t.Fatalf("user 7: want the feed EVENT first, got %s", f.raw)
	}
	checkFeedEvent(t, f, "blue mug")
	u7.send("PING", "ping-7", nil)
	for {
		f := u7.next()
		if f.Type == switchboard.TypeEvent && f.Topic == feedTopic {
			continue
		}
		if f.Type != switchboard.TypePong || f.CorrelationID != "ping-7" {
			t.Fatalf("user 7: want only the PONG after the feed event, got %s", f.raw)
		}
		break
	}

	// The REST API agrees.
	var list []order
	if code := s.do("GET", "/orders?user_id=42", "", &list); code != http.StatusOK || len(list) != 1 || list[0].ID != o.ID {
		t.Fatalf("GET /orders?user_id=42: %d %+v", code, list)
	}
	list = nil
	if code := s.do("GET", "/orders?user_id=7", "", &list); code != http.StatusOK || list == nil || len(list) != 0 {
		t.Fatalf("GET /orders?user_id=7: %d %+v (want an empty list)", code, list)
	}
}

// checkFeedEvent checks the public event of a new order: the item and nothing else.
func checkFeedEvent(t *testing.T, f frame, item string) {
	t.Helper()
	var p struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	f.payload(t, &p)
	if p.Event != "order_created" || len(p.Data) != 1 || p.Data["item"] != item {
		t.Errorf("feed event should carry only the item: %s", f.raw)
	}
}

func TestCancelAction(t *testing.T) {
	s := startServer(t)
	u42 := s.login("42")
	u7 := s.login("7")
	o := s.createOrder("42", "teapot")
	// Drain what the new order sent to each.
	for range 3 {
		u42.next()
	}
	u7.next()

	// Someone else's order: forbidden, and the order is left alone.
	r := u7.request("ACTION", "cancel-7", map[string]any{"action": "cancel", "order_id": o.ID})
	expectError(t, r, switchboard.CodeForbidden)
	// An order that does not exist looks the same, so IDs cannot be probed.
	r = u7.request("ACTION", "cancel-none", map[string]any{"action": "cancel", "order_id": "ord-999"})
	expectError(t, r, switchboard.CodeForbidden)
	var list []order
	s.do("GET", "/orders?user_id=42", "", &list)
	if len(list) != 1 || list[0].Status != statusPlaced {
		t.Fatalf("after user 7's attempt: %+v", list)
	}

	// One's own order: ACTION_RESULT ok, plus the new state on the orders topic.
	u42.send("ACTION", "cancel-42", map[string]any{"action": "cancel", "order_id": o.ID})
	var gotResult, gotData bool
	for !(gotResult && gotData) {
		f := u42.next()
		switch {
		case f.Type == switchboard.TypeActionResult && f.CorrelationID == "cancel-42":
			gotResult = true
			var p struct {
				Action string `json:"action"`
				OK     bool   `json:"ok"`
				Order  order  `json:"order"`
			}
			f.payload(t, &p)
			if p.Action != "cancel" || !p.OK || p.Order.ID != o.ID || p.Order.Status != statusCancelled {
				t.Errorf("ACTION_RESULT: %s", f.raw)
			}
		case f.Type == switchboard.TypeData && f.Topic == ordersTopic("42"):
			gotData = true
			var p struct {
				Data order `json:"data"`
			}
			f.payload(t, &p)
			if p.Data.ID != o.ID || p.Data.Status != statusCancelled {
				t.Errorf("DATA after cancel: %s", f.raw)
			}
		default:
			t.Fatalf("user 42: unexpected frame %s", f.raw)
		}
	}
	list = nil
	s.do("GET", "/orders?user_id=42", "", &list)
	if len(list) != 1 || list[0].Status != statusCancelled {
		t.Fatalf("after cancelling: %+v", list)
	}

	// Cancelling again is harmless; an unknown action is a bad message.
	r = u42.request("ACTION", "cancel-again", map[string]any{"action": "cancel", "order_id": o.ID})
	if r.Type != switchboard.TypeActionResult {
		t.Fatalf("second cancel: %s", r.raw)
	}
	r = u42.request("ACTION", "refund", map[string]any{"action": "refund", "order_id": o.ID})
	expectError(t, r, switchboard.CodeBadMessage)
}

func TestRequiresAuthentication(t *testing.T) {
	s := startServer(t)
	c := s.dial("anonymous")
	expectError(t, c.request("SUBSCRIBE", "s1", map[string]any{"subscriptions": []string{feedTopic}}), switchboard.CodeUnauthorized)
	expectError(t, c.request("ACTION", "a1", map[string]any{"action": "cancel", "order_id": "ord-1"}), switchboard.CodeUnauthorized)

	r := c.request("AUTHENTICATE", "bad", map[string]any{"auth": map[string]string{"token": "not-a-jwt"}})
	if r.Type != switchboard.TypeAuthenticateFailure {
		t.Fatalf("bad token: %s", r.raw)
	}
	// PING is allowed before authentication.
	if r := c.request("PING", "p1", nil); r.Type != switchboard.TypePong {
		t.Fatalf("PING: %s", r.raw)
	}
}

func TestBadRequests(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name, method, path, body string
	}{
		{"not JSON", "POST", "/orders", `user_id=42&item=mug`},
		{"empty body", "POST", "/orders", ``},
		{"two objects", "POST", "/orders", `{"user_id":"42","item":"mug"} {}`},
		{"no user", "POST", "/orders", `{"item":"mug"}`},
		{"no item", "POST", "/orders", `{"user_id":"42"}`},
		{"blank item", "POST", "/orders", `{"user_id":"42","item":"   "}`},
		{"unknown field", "POST", "/orders", `{"user_id":"42","item":"mug","price":3}`},
		{"user with colon", "POST", "/orders", `{"user_id":"42:x","item":"mug"}`},
		{"user with space", "POST", "/orders", `{"user_id":"4 2","item":"mug"}`},
		{"user as object", "POST", "/orders", `{"user_id":{},"item":"mug"}`},
		{"negative user", "POST", "/orders", `{"user_id":-1,"item":"mug"}`},
		{"item too long", "POST", "/orders", `{"user_id":"42","item":"` + strings.Repeat("x", maxItemLen+1) + `"}`},
		{"list without user", "GET", "/orders", ``},
		{"token without user", "GET", "/token", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out struct {
				Error string `json:"error"`
			}
			if code := s.do(tt.method, tt.path, tt.body, &out); code != http.StatusBadRequest || out.Error == "" {
				t.Fatalf("status %d, error %q; want 400 with an error message", code, out.Error)
			}
		})
	}

	// A numeric user_id is accepted and stored as a string.
	var o order
	if code := s.do("POST", "/orders", `{"user_id":42,"item":"mug"}`, &o); code != http.StatusCreated || o.UserID != "42" {
		t.Fatalf("numeric user_id: %d %+v", code, o)
	}
	if code := s.do("DELETE", "/orders", "", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE /orders: %d", code)
	}
}
