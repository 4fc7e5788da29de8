package switchboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard/auth"
)

// wpErrorLog collects what Config.OnError reports.
type wpErrorLog struct {
	mu   sync.Mutex
	errs []error
	conn []*Conn
}

func (l *wpErrorLog) onError(c *Conn, err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.conn = append(l.conn, c)
	l.mu.Unlock()
}

func (l *wpErrorLog) snapshot() ([]error, []*Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...), append([]*Conn(nil), l.conn...)
}

// A handler registered on the manager answers its type, on the connection's read
// goroutine, with the request in hand.
func TestRouterManagerHandler(t *testing.T) {
	ts := startServer(t, Config{})
	type seen struct {
		conn    *Conn
		typ, id string
		payload string
		ctxOK   bool
	}
	got := make(chan seen, 1)
	ts.m.Handle("CHAT", func(ctx context.Context, c *Conn, msg *Message) error {
		got <- seen{c, msg.Type, msg.ID, string(msg.Payload), ctx != nil && ctx.Err() == nil}
		var p struct {
			Text string `json:"text"`
		}
		if err := msg.DecodePayload(&p); err != nil {
			return err
		}
		return c.Reply(msg, "CHAT_ACK", map[string]any{"echo": strings.ToUpper(p.Text)})
	})
	c := ts.dial()
	id, _ := c.request(TypeConnect, nil, "hello").field("client_id").(string)

	w := c.request("CHAT", map[string]any{"text": "hi there"}, "chat-1")
	wpWantType(t, w, "CHAT_ACK")
	wpCheckEnvelope(t, w.raw)
	if w.CorrelationID != "chat-1" || w.field("echo") != "HI THERE" {
		t.Fatalf("reply %s", w.raw)
	}
	s := <-got
	if s.conn == nil || s.conn.ID() != id || s.typ != "CHAT" || s.id != "chat-1" || !s.ctxOK {
		t.Fatalf("handler saw conn=%v type=%q id=%q ctxOK=%v", s.conn, s.typ, s.id, s.ctxOK)
	}
	if s.payload != `{"text":"hi there"}` {
		t.Fatalf("handler saw payload %s", s.payload)
	}

	// Router() is the same router; Remove makes the type unknown again.
	ts.m.Router().Remove("CHAT")
	wpWantError(t, c.request("CHAT", map[string]any{"text": "x"}, "chat-2"), CodeUnknownType, "chat-2")
}

// A handler registered on one connection (c.Handle in OnConnect) takes precedence over the
// manager's for that connection only.
func TestRouterPerConnectionHandler(t *testing.T) {
	var (
		mu  sync.Mutex
		n   int
		hit = make(chan *Conn, 4)
	)
	ts := startServer(t, Config{OnConnect: func(c *Conn) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			c.Handle("CHAT", func(ctx context.Context, c *Conn, msg *Message) error {
				return c.Reply(msg, "CHAT_ACK", map[string]any{"by": "connection"})
			})
		}
		hit <- c
	}})
	ts.m.Handle("CHAT", func(ctx context.Context, c *Conn, msg *Message) error {
		return c.Reply(msg, "CHAT_ACK", map[string]any{"by": "manager"})
	})
	ts.m.Handle("OTHER", func(ctx context.Context, c *Conn, msg *Message) error {
		return c.Reply(msg, "OTHER_ACK", nil)
	})

	a := ts.dial()
	<-hit
	b := ts.dial()
	<-hit

	if w := a.request("CHAT", nil, "a1"); w.Type != "CHAT_ACK" || w.field("by") != "connection" {
		t.Fatalf("connection A: %s, want the per-connection handler", w.raw)
	}
	if w := b.request("CHAT", nil, "b1"); w.Type != "CHAT_ACK" || w.field("by") != "manager" {
		t.Fatalf("connection B: %s, want the manager's handler", w.raw)
	}
	// Types without a per-connection handler still reach the manager's on A.
	if w := a.request("OTHER", nil, "a2"); w.Type != "OTHER_ACK" {
		t.Fatalf("connection A, OTHER: %s", w.raw)
	}
	// A per-connection handler for a type the manager does not know.
	ts.m.Conn(a.request(TypeConnect, nil, "a3").field("client_id").(string)).Handle("SOLO", func(ctx context.Context, c *Conn, msg *Message) error {
		return c.Reply(msg, "SOLO_ACK", nil)
	})
	if w := a.request("SOLO", nil, "a4"); w.Type != "SOLO_ACK" {
		t.Fatalf("connection A, SOLO: %s", w.raw)
	}
	wpWantError(t, b.request("SOLO", nil, "b2"), CodeUnknownType, "b2")
}

// The OnConnect hooks run before the first message of the connection is read, so handlers
// registered there see every message (Protocol.OnConnect: "before any message is read").
func TestRouterOnConnectRunsBeforeFirstMessage(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	early := make(chan string, 1)
	ts := startServer(t, Config{OnConnect: func(c *Conn) {
		close(entered)
		<-release
		c.Handle("FIRST", func(ctx context.Context, c *Conn, msg *Message) error {
			return c.Reply(msg, "FIRST_ACK", nil)
		})
	}})
	// Reached only if the message is read before OnConnect has registered its handler.
	ts.m.Handle("FIRST", func(ctx context.Context, c *Conn, msg *Message) error {
		early <- msg.ID
		return c.Reply(msg, "FIRST_TOO_EARLY", nil)
	})
	c := ts.dial()
	<-entered
	c.send(`{"type":"FIRST","id":"x1"}`)
	// Give a read loop that started too early ample time to dispatch the message.
	time.Sleep(200 * time.Millisecond)
	select {
	case id := <-early:
		close(release)
		t.Fatalf("message %s handled while OnConnect was still running", id)
	default:
	}
	close(release)
	if w := c.read(); w.Type != "FIRST_ACK" || w.CorrelationID != "x1" {
		t.Fatalf("first message answered with %s, want FIRST_ACK from the handler OnConnect registered", w.raw)
	}
}

func TestRouterUnknownType(t *testing.T) {
	ts := startServer(t, Config{})
	ts.m.Handle("KNOWN", func(ctx context.Context, c *Conn, msg *Message) error { return nil })
	c := ts.dial()
	for i, typ := range []string{"NOPE", "known", "ACTION", "DATA", "CONNECT_ACK", "ERROR", strings.Repeat("X", 300)} {
		id := fmt.Sprintf("u%d", i)
		w := c.request(typ, nil, id)
		wpWantError(t, w, CodeUnknownType, id)
	}
	// Without an id the ERROR has no correlation_id.
	c.send(`{"type":"NOPE"}`)
	wpWantError(t, c.read(), CodeUnknownType, "")
	wpAlive(t, c)
}

var errWPBoom = errors.New("boom: database unreachable")

// What a handler returns decides the ERROR the client gets: a *Error its code, anything
// else "internal" (and OnError hears about it).
func TestRouterHandlerErrors(t *testing.T) {
	cases := []struct {
		name     string
		ret      error
		wantCode ErrorCode
		wantMsg  string // substring of the ERROR message
		reported bool   // OnError called with ret
	}{
		{"*Error forbidden", Errorf(CodeForbidden, "not your order"), CodeForbidden, "not your order", false},
		{"*Error too_large", &Error{Code: CodeTooLarge, Message: "at most 10 items"}, CodeTooLarge, "at most 10 items", false},
		{"*Error custom code", Errorf(ErrorCode("quota_exceeded"), "%d left", 0), "quota_exceeded", "0 left", false},
		{"wrapped *Error", fmt.Errorf("saving: %w", Errorf(CodeBadMessage, "no title")), CodeBadMessage, "no title", false},
		{"auth.ErrForbidden", fmt.Errorf("%w: admins only", auth.ErrForbidden), CodeForbidden, "admins only", false},
		{"plain error", errWPBoom, CodeInternal, "internal", true},
		{"wrapped plain error", fmt.Errorf("order 7: %w", errWPBoom), CodeInternal, "internal", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var log wpErrorLog
			ts := startServer(t, Config{OnError: log.onError})
			ts.m.Handle("DO", func(ctx context.Context, c *Conn, msg *Message) error { return tc.ret })
			c := ts.dial()
			w := c.request("DO", nil, "do-1")
			wpWantError(t, w, tc.wantCode, "do-1")
			if msg, _ := w.field("message").(string); !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("ERROR message %q, want it to contain %q", msg, tc.wantMsg)
			}
			if tc.wantCode == CodeInternal && strings.Contains(w.field("message").(string), "database") {
				t.Fatalf("internal error details leaked to the client: %s", w.raw)
			}
			wpAlive(t, c) // the connection lives on; also orders OnError before the check
			errs, conns := log.snapshot()
			if !tc.reported {
				if len(errs) != 0 {
					t.Fatalf("OnError called for a protocol error: %v", errs)
				}
				return
			}
			if len(errs) != 1 || !errors.Is(errs[0], errWPBoom) {
				t.Fatalf("OnError got %v, want one error wrapping %v", errs, errWPBoom)
			}
			if conns[0] == nil || conns[0].ID() != c.request(TypeConnect, nil, "who").field("client_id") {
				t.Fatalf("OnError got connection %v, want the handler's", conns[0])
			}
		})
	}
}

// A panicking handler is answered with ERROR internal, reported to OnError, and the
// connection (and the server) carries on.
func TestRouterHandlerPanic(t *testing.T) {
	var log wpErrorLog
	ts := startServer(t, Config{OnError: log.onError})
	ts.m.Handle("CRASH", func(ctx context.Context, c *Conn, msg *Message) error {
		var m map[string]int
		m["x"] = 1 // nil map write
		return nil
	})
	ts.m.Handle("THROW", func(ctx context.Context, c *Conn, msg *Message) error {
		panic("handler exploded on purpose")
	})
	ts.m.Handle("FINE", func(ctx context.Context, c *Conn, msg *Message) error {
		return c.Reply(msg, "FINE_ACK", nil)
	})
	c := ts.dial()
	c.subscribe("after.panic")
	other := ts.dial()
	wpAlive(t, other)

	wpWantError(t, c.request("THROW", nil, "p1"), CodeInternal, "p1")
	wpWantError(t, c.request("CRASH", nil, "p2"), CodeInternal, "p2")

	// Still working: PING, another handler, a broadcast and a publication.
	wpAlive(t, c)
	if w := c.request("FINE", nil, "p3"); w.Type != "FINE_ACK" {
		t.Fatalf("after panics: %s", w.raw)
	}
	if err := ts.m.Broadcast(context.Background(), wpData(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := ts.m.Publish(context.Background(), "after.panic", wpData(t, 2)); err != nil {
		t.Fatal(err)
	}
	if d := wpNextData(t, c); wpDataN(d) != 1 {
		t.Fatalf("broadcast after panic: %s", d.raw)
	}
	if d := wpNextData(t, c); wpDataN(d) != 2 || d.Topic != "after.panic" {
		t.Fatalf("publication after panic: %s", d.raw)
	}
	if d := wpNextData(t, other); wpDataN(d) != 1 {
		t.Fatalf("other client, broadcast: %s", d.raw)
	}
	wpAlive(t, other)

	errs, _ := log.snapshot()
	if len(errs) != 2 {
		t.Fatalf("OnError got %d errors %v, want 2", len(errs), errs)
	}
	if !strings.Contains(errs[0].Error(), "handler exploded on purpose") || !strings.Contains(errs[0].Error(), "THROW") {
		t.Fatalf("OnError for the panic: %v", errs[0])
	}
	if !strings.Contains(errs[1].Error(), "nil map") {
		t.Fatalf("OnError for the runtime panic: %v", errs[1])
	}
}

// Router.Handle refuses programming errors loudly: control types, an empty type, a nil
// handler. The same holds through Manager.Handle and Conn.Handle.
func TestRouterHandlePanics(t *testing.T) {
	h := func(ctx context.Context, c *Conn, msg *Message) error { return nil }
	cases := []struct {
		name string
		typ  string
		h    HandlerFunc
	}{
		{"CONNECT", TypeConnect, h},
		{"AUTHENTICATE", TypeAuthenticate, h},
		{"SUBSCRIBE", TypeSubscribe, h},
		{"UNSUBSCRIBE", TypeUnsubscribe, h},
		{"PING", TypePing, h},
		{"PONG", TypePong, h},
		{"DISCONNECT", TypeDisconnect, h},
		{"empty type", "", h},
		{"nil handler", "CHAT", nil},
		{"empty type and nil handler", "", nil},
	}
	ts := startServer(t, Config{})
	var conn *Conn
	c := ts.dial()
	conn = ts.m.Conn(c.request(TypeConnect, nil, "who").field("client_id").(string))
	registrars := map[string]func(string, HandlerFunc){
		"Router":  NewRouter().Handle,
		"Manager": ts.m.Handle,
		"Conn":    conn.Handle,
	}
	for _, tc := range cases {
		for rname, register := range registrars {
			t.Run(rname+"/"+tc.name, func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Fatalf("Handle(%q, handler=%v) did not panic", tc.typ, tc.h != nil)
					}
				}()
				register(tc.typ, tc.h)
			})
		}
	}
	// Control types still work as before, and ordinary types register fine.
	wpAlive(t, c)
	r := NewRouter()
	for _, typ := range []string{TypeAction, "CHAT", "ping", "X"} {
		r.Handle(typ, h)
		if r.lookup(typ) == nil {
			t.Fatalf("%s not registered", typ)
		}
	}
	r.Remove("CHAT")
	if r.lookup("CHAT") != nil {
		t.Fatal("Remove left the handler")
	}
}
