package switchboard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

const typeNote = "NOTE" // a message type the tests keep by Config.Inbox.Types

func noteMsg(t testing.TB, typ string, n int) *Message {
	t.Helper()
	m, err := NewMessage(typ, map[string]any{"n": n})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func inboxServer(t *testing.T, in InboxConfig) *testServer {
	t.Helper()
	return startServer(t, Config{Authenticator: newJWT(t), Inbox: in})
}

// login connects as user with AUTHENTICATE; the reply must be the first frame.
func (ts *testServer) login(user string) *client {
	ts.t.Helper()
	c := ts.dial()
	if r := c.authenticate(token(ts.t, user, time.Hour)); r.Type != TypeAuthenticateSuccess {
		ts.t.Fatalf("AUTHENTICATE: %s", r.raw)
	}
	return c
}

// loginHandshake connects as user with a handshake token.
func (ts *testServer) loginHandshake(user string) *client {
	ts.t.Helper()
	return ts.dial(dialOpts{query: "token=" + token(ts.t, user, time.Hour)})
}

// offline waits until user has no connection left.
func (ts *testServer) offline(user string) {
	ts.t.Helper()
	waitFor(ts.t, user+" offline", func() bool { return len(ts.m.UserConns(user)) == 0 })
}

func (ts *testServer) send(user string, msg *Message, opts ...SendOption) {
	ts.t.Helper()
	if err := ts.m.SendToUser(context.Background(), user, msg, opts...); err != nil {
		ts.t.Fatalf("SendToUser(%s): %v", user, err)
	}
}

// expectNotes reads frames, skipping PINGs, and checks that they are of type typ with the
// payload field n equal to ns, in order.
func (c *client) expectNotes(typ string, ns ...int) {
	c.t.Helper()
	for _, n := range ns {
		w := c.expect(typ)
		if w.field("n") != float64(n) {
			c.t.Fatalf("got %s, want %s n=%d", w.raw, typ, n)
		}
	}
}

// nothingKept sends a live marker to user and checks that it is the next frame: anything
// kept and still to come would be queued before it.
func (ts *testServer) nothingKept(c *client, user string) {
	ts.t.Helper()
	// A handshake token is checked after the upgrade: wait for the user to be registered.
	waitFor(ts.t, user+" online", func() bool { return len(ts.m.UserConns(user)) > 0 })
	if err := ts.m.BroadcastToUsers(context.Background(), noteMsg(ts.t, "MARKER", 0), user); err != nil {
		ts.t.Fatal(err)
	}
	if w := c.expect("MARKER"); w.field("n") != 0.0 {
		ts.t.Fatalf("marker %s", w.raw)
	}
}

func TestInboxDeliveredInOrderAtLogin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		login func(ts *testServer, user string) *client
	}{
		{"AUTHENTICATE", (*testServer).login},
		{"handshake token", (*testServer).loginHandshake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := inboxServer(t, InboxConfig{Types: []string{typeNote}})
			var sent []*Message
			for i := 1; i <= 5; i++ {
				m := noteMsg(t, typeNote, i)
				sent = append(sent, m)
				if err := ts.m.BroadcastToUsers(context.Background(), m, "alice"); err != nil {
					t.Fatal(err)
				}
			}
			c := tc.login(ts, "alice")
			for _, m := range sent {
				w := c.expect(typeNote)
				if w.ID != m.ID || w.Timestamp != m.Timestamp {
					t.Fatalf("got %s, want the message as sent: id %s, timestamp %v", w.raw, m.ID, m.Timestamp)
				}
			}
			ts.nothingKept(c, "alice")

			// Delivered means gone: the next login finds nothing.
			_ = c.ws.CloseNow()
			ts.offline("alice")
			ts.nothingKept(tc.login(ts, "alice"), "alice")
		})
	}
}

func TestInboxTTL(t *testing.T) {
	ttl := 300 * time.Millisecond
	ts := inboxServer(t, InboxConfig{Types: []string{typeNote}, TTL: ttl})
	ts.send("alice", noteMsg(t, typeNote, 1))
	ts.send("alice", noteMsg(t, typeNote, 2))
	time.Sleep(2 * ttl) // past the TTL
	ts.nothingKept(ts.login("alice"), "alice")
}

func TestInboxSizeDropsOldest(t *testing.T) {
	ts := inboxServer(t, InboxConfig{Types: []string{typeNote}, Size: 3})
	for i := 1; i <= 6; i++ {
		ts.send("alice", noteMsg(t, typeNote, i))
	}
	c := ts.login("alice")
	c.expectNotes(typeNote, 4, 5, 6)
	ts.nothingKept(c, "alice")
}

// TestInboxLargerThanSendQueue: a login delivers a full inbox even when it holds more
// messages than a connection's send queue, which is meant for slow consumers.
func TestInboxLargerThanSendQueue(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), SendQueueSize: 4, Inbox: InboxConfig{Types: []string{typeNote}, Size: 20}})
	var want []int
	for i := 1; i <= 20; i++ {
		ts.send("alice", noteMsg(t, typeNote, i))
		want = append(want, i)
	}
	c := ts.login("alice")
	c.expectNotes(typeNote, want...)
	ts.nothingKept(c, "alice")
}

func TestInboxOnlineUserGetsItLiveNotKept(t *testing.T) {
	ts := inboxServer(t, InboxConfig{Types: []string{typeNote}})
	tab1, tab2 := ts.login("alice"), ts.loginHandshake("alice")
	waitFor(t, "both tabs registered", func() bool { return len(ts.m.UserConns("alice")) == 2 })
	for i := 1; i <= 3; i++ {
		ts.send("alice", noteMsg(t, typeNote, i))
	}
	tab1.expectNotes(typeNote, 1, 2, 3)
	tab2.expectNotes(typeNote, 1, 2, 3)
	_ = tab1.ws.CloseNow()
	_ = tab2.ws.CloseNow()
	ts.offline("alice")
	ts.nothingKept(ts.login("alice"), "alice")
}

func TestInboxOptIn(t *testing.T) {
	ctx := context.Background()
	t.Run("by type and by message", func(t *testing.T) {
		ts := inboxServer(t, InboxConfig{Types: []string{typeNote}})
		steps := []struct {
			what string
			send func(m *Message) error
			typ  string
		}{
			{"BroadcastToUsers, kept type", func(m *Message) error { return ts.m.BroadcastToUsers(ctx, m, "alice") }, typeNote},
			{"BroadcastToUsers, other type", func(m *Message) error { return ts.m.BroadcastToUsers(ctx, m, "alice") }, TypeEvent},
			{"SendToUser KeepIfOffline, other type", func(m *Message) error { return ts.m.SendToUser(ctx, "alice", m, KeepIfOffline) }, TypeEvent},
			{"SendToUser, other type", func(m *Message) error { return ts.m.SendToUser(ctx, "alice", m) }, TypeData},
			{"SendToUsers KeepIfOffline", func(m *Message) error { return ts.m.SendToUsers(ctx, []string{"alice"}, m, KeepIfOffline) }, TypeData},
			{"Publish to the user's topic", func(m *Message) error { return ts.m.Publish(ctx, "user:alice", m) }, typeNote},
			{"Broadcast", func(m *Message) error { return ts.m.Broadcast(ctx, m) }, typeNote},
		}
		for i, s := range steps {
			if err := s.send(noteMsg(t, s.typ, i)); err != nil {
				t.Fatalf("%s: %v", s.what, err)
			}
		}
		c := ts.login("alice")
		c.expectNotes(typeNote, 0)
		c.expectNotes(TypeEvent, 2)
		c.expectNotes(TypeData, 4)
		ts.nothingKept(c, "alice")
	})
	t.Run("KeepIfOffline needs no configuration", func(t *testing.T) {
		ts := inboxServer(t, InboxConfig{})
		ts.send("alice", noteMsg(t, typeNote, 1))
		ts.send("alice", noteMsg(t, typeNote, 2), KeepIfOffline)
		c := ts.login("alice")
		c.expectNotes(typeNote, 2)
		ts.nothingKept(c, "alice")
	})
	t.Run("inbox off", func(t *testing.T) {
		ts := inboxServer(t, InboxConfig{Types: []string{typeNote}, Size: -1})
		ts.send("alice", noteMsg(t, typeNote, 1), KeepIfOffline)
		ts.nothingKept(ts.login("alice"), "alice")
	})
}

func TestInboxSendToUsersOnlineAndOffline(t *testing.T) {
	ts := inboxServer(t, InboxConfig{})
	alice := ts.login("alice")
	if err := ts.m.SendToUsers(context.Background(), []string{"alice", "bob", "alice"}, noteMsg(t, typeNote, 1), KeepIfOffline); err != nil {
		t.Fatal(err)
	}
	alice.expectNotes(typeNote, 1)
	ts.nothingKept(alice, "alice") // once, though named twice
	bob := ts.login("bob")
	bob.expectNotes(typeNote, 1)
	ts.nothingKept(bob, "bob")
	_ = alice.ws.CloseNow()
	ts.offline("alice")
	ts.nothingKept(ts.login("alice"), "alice")
}

// TestInboxClosingConnectionIsOffline: a connection that is closing cannot take messages
// any more, so a user whose only connection is closing is offline: what is sent is kept, and
// a new connection of the user takes it.
func TestInboxClosingConnectionIsOffline(t *testing.T) {
	ts := inboxServer(t, InboxConfig{Types: []string{typeNote}})
	ts.login("alice") // never reads again: its close handshake stays pending
	conns := ts.m.UserConns("alice")
	if len(conns) != 1 {
		t.Fatalf("%d connections", len(conns))
	}
	conns[0].Close(CloseGoingAway, "test: closing")
	if !conns[0].closing() || len(ts.m.UserConns("alice")) != 1 {
		t.Fatal("the closing connection should still be registered")
	}
	ts.send("alice", noteMsg(t, typeNote, 1))
	c := ts.login("alice")
	c.expectNotes(typeNote, 1)
	ts.nothingKept(c, "alice")
}

// closingStore closes the user's connection just before the inbox is taken, as if the
// client had gone at that moment.
type closingStore struct {
	InboxStore
	m *Manager
}

func (s closingStore) Take(ctx context.Context, user string) ([]*Message, error) {
	for _, c := range s.m.UserConns(user) {
		c.Close(CloseGoingAway, "test: gone during login")
	}
	return s.InboxStore.Take(ctx, user)
}

// TestInboxKeptAgainWhenLoginFails: messages taken for a connection that closed before they
// could be queued are kept for the next login, in order.
func TestInboxKeptAgainWhenLoginFails(t *testing.T) {
	mem := NewMemoryInbox()
	store := &closingStore{InboxStore: mem}
	ts := inboxServer(t, InboxConfig{Types: []string{typeNote}, Store: store})
	store.m = ts.m
	ts.send("alice", noteMsg(t, typeNote, 1))
	ts.send("alice", noteMsg(t, typeNote, 2))
	c := ts.dial()
	c.send(map[string]any{"type": TypeAuthenticate, "payload": map[string]any{"token": token(t, "alice", time.Hour)}})
	if code, _, _ := c.closed(); code != CloseGoingAway {
		t.Fatalf("closed with %d", code)
	}
	ts.offline("alice")
	got, err := mem.Take(context.Background(), "alice")
	if err != nil || len(got) != 2 || string(got[0].Payload) != `{"n":1}` || string(got[1].Payload) != `{"n":2}` {
		t.Fatalf("kept again: %v %v", got, err)
	}
}

// latencyStore delays each operation of its store by a random fraction of a millisecond,
// as a network store would, so that publishes and logins interleave in every way.
type latencyStore struct{ InboxStore }

func pause() { time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) }

func (s latencyStore) Put(ctx context.Context, user string, msg *Message, size int, ttl time.Duration) error {
	pause()
	return s.InboxStore.Put(ctx, user, msg, size, ttl)
}

func (s latencyStore) Take(ctx context.Context, user string) ([]*Message, error) {
	pause()
	return s.InboxStore.Take(ctx, user)
}

func (s latencyStore) Remove(ctx context.Context, user, id string) (bool, error) {
	pause()
	return s.InboxStore.Remove(ctx, user, id)
}

// TestInboxLoginRace publishes to a user while the user logs in, over and over: whether a
// message is kept and taken by the login or delivered live, it must arrive exactly once,
// and what was kept before the login must come first, in order.
func TestInboxLoginRace(t *testing.T) {
	store := latencyStore{NewMemoryInbox()}
	ts := startServer(t, Config{Authenticator: newJWT(t), RequireAuth: true, Inbox: InboxConfig{Size: 1000, Store: store}})
	const rounds, before, during = 20, 3, 40
	for r := range rounds {
		user := fmt.Sprintf("u%d", r)
		for i := range before {
			ts.send(user, noteMsg(t, typeNote, i), KeepIfOffline)
		}
		var live []*Message
		for i := before; i < before+during; i++ {
			live = append(live, noteMsg(t, typeNote, i))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range live {
				if err := ts.m.SendToUser(context.Background(), user, m, KeepIfOffline); err != nil {
					errs <- err
					return
				}
			}
		}()
		var c *client
		if r%2 == 0 {
			c = ts.loginHandshake(user)
		} else {
			c = ts.login(user)
		}
		got := map[int]int{}
		for k := 0; k < before+during; {
			w, err := c.tryRead(10 * time.Second)
			if err != nil {
				t.Fatalf("round %d: %d of %d messages arrived (%v), then: %v", r, k, before+during, got, err)
			}
			if w.Type == TypePing {
				continue
			}
			n, ok := w.field("n").(float64)
			if w.Type != typeNote || !ok {
				t.Fatalf("round %d: unexpected %s", r, w.raw)
			}
			k++
			if k <= before && int(n) != k-1 {
				t.Fatalf("round %d: frame %d is n=%v; the kept messages must come first, in order", r, k, n)
			}
			got[int(n)]++
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		ts.nothingKept(c, user) // no duplicate still to come
		var wrong []string
		for i := range before + during {
			if got[i] != 1 {
				wrong = append(wrong, fmt.Sprintf("n=%d×%d", i, got[i]))
			}
		}
		if len(wrong) > 0 {
			t.Fatalf("round %d: not exactly once: %s", r, strings.Join(wrong, " "))
		}
		_ = c.ws.CloseNow()
	}
}

// TestMemoryInboxStaysBounded: expired messages and the inboxes they leave empty are
// dropped by the next operation, whoever it is for.
func TestMemoryInboxStaysBounded(t *testing.T) {
	s := NewMemoryInbox()
	ctx := context.Background()
	for i := range 1000 {
		if err := s.Put(ctx, fmt.Sprintf("user%d", i), noteMsg(t, typeNote, i), 5, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		if err := s.Put(ctx, "busy", noteMsg(t, typeNote, 0), 5, 2*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	users, entries := len(s.users), len(s.byExp)
	// Let the first hour pass: the 1000 one-hour messages are now out of time.
	for _, e := range s.byExp {
		e.expires = e.expires.Add(-time.Hour)
	}
	s.mu.Unlock()
	if users != 1001 || entries != 1005 {
		t.Fatalf("before expiry: %d users, %d entries; want 1001 and 1005", users, entries)
	}
	if _, err := s.Take(ctx, "nobody"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	users, entries = len(s.users), len(s.byExp)
	s.mu.Unlock()
	if users != 1 || entries != 5 {
		t.Fatalf("after expiry: %d users, %d entries; want 1 and 5", users, entries)
	}
}
