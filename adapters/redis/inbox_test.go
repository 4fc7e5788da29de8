package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/internal/inboxtest"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// TestInboxContract runs the InboxStore contract against the Redis store and, side by side,
// the in-memory one, so that the two behave alike.
func TestInboxContract(t *testing.T) {
	inboxtest.Run(t,
		inboxtest.Store{Name: "memory", New: func(*testing.T) switchboard.InboxStore { return switchboard.NewMemoryInbox() }},
		inboxtest.Store{Name: "redis", New: func(t *testing.T) switchboard.InboxStore {
			return NewInbox(rawClient(t, testenv.RedisURL(t)), uniquePrefix(t))
		}},
	)
}

// TestInboxKeyExpires checks the Redis side of the bound and the TTL: the list is trimmed
// to the size, the key expires with its newest entry, and Take deletes it.
func TestInboxKeyExpires(t *testing.T) {
	url := testenv.RedisURL(t)
	rc := rawClient(t, url)
	s := NewInbox(rc, uniquePrefix(t))
	ctx := context.Background()
	for i := range 5 {
		if err := s.Put(ctx, "alice", inboxtest.Msg(t, string(rune('a'+i)), i), 3, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	key := s.Key("alice")
	if n := rc.LLen(ctx, key).Val(); n != 3 {
		t.Fatalf("list of %d entries, want 3", n)
	}
	if ttl := rc.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("key TTL %v, want within (0, 1h]", ttl)
	}
	if _, err := s.Take(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n := rc.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("Take left the key behind")
	}
	if err := s.Put(ctx, "bob", inboxtest.Msg(t, "x", 1), 3, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the key of an expired inbox to disappear", func() bool {
		return rc.Exists(ctx, s.Key("bob")).Val() == 0
	})
}

// login connects to n without a handshake token and authenticates as user with
// AUTHENTICATE, whose answer must be the first frame.
func (n *node) login(user string) *client {
	n.t.Helper()
	c := n.dial("")
	tok, err := auth.NewHMACToken(secret, user, time.Hour, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	if r := c.request(switchboard.TypeAuthenticate, map[string]any{"token": tok}, "auth-"+user); r.Type != switchboard.TypeAuthenticateSuccess {
		n.t.Fatalf("AUTHENTICATE: %s", r.raw)
	}
	return c
}

// offlineEverywhere waits until no node counts a connection of user.
func offlineEverywhere(t testing.TB, n *node, user string) {
	t.Helper()
	waitFor(t, 10*time.Second, user+" offline in the cluster", func() bool {
		k, err := n.b.UserConns(context.Background(), user)
		return err == nil && k == 0
	})
}

// marker sends a live message to user from n and checks that c gets it next: anything
// kept and still to come would have been queued before it.
func marker(t testing.TB, n *node, c *client, user string) {
	t.Helper()
	if err := n.m.BroadcastToUsers(context.Background(), msg(t, "MARKER", 0), user); err != nil {
		t.Fatal(err)
	}
	c.expect("MARKER", 0)
}

// TestInboxAcrossNodes: kept by one node, delivered at a login on another, in order.
func TestInboxAcrossNodes(t *testing.T) {
	a, b, _ := threeNodes(t)
	rc := rawClient(t, testenv.RedisURL(t))
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if err := a.m.SendToUser(ctx, "alice", msg(t, typ, i), switchboard.KeepIfOffline); err != nil {
			t.Fatal(err)
		}
	}
	key := a.b.Inbox().Key("alice")
	if n := rc.LLen(ctx, key).Val(); n != 3 {
		t.Fatalf("%d messages kept in Redis, want 3", n)
	}
	c := b.login("alice")
	for i := 1; i <= 3; i++ {
		c.expect(typ, float64(i))
	}
	marker(t, a, c, "alice")
	if rc.Exists(ctx, key).Val() != 0 {
		t.Fatal("the inbox is still in Redis after the login")
	}
}

// TestInboxOnlineOnAnotherNode: a user connected to another node is online, so the message
// goes live there and is not kept.
func TestInboxOnlineOnAnotherNode(t *testing.T) {
	a, b, c := threeNodes(t)
	alice := b.login("alice")
	if err := a.m.SendToUser(context.Background(), "alice", msg(t, typ, 1), switchboard.KeepIfOffline); err != nil {
		t.Fatal(err)
	}
	alice.expect(typ, 1)
	_ = alice.ws.CloseNow()
	offlineEverywhere(t, a, "alice")
	again := c.login("alice")
	marker(t, a, again, "alice")
}

// TestInboxLoginRaceAcrossNodes publishes from one node to a user who logs in on another,
// over and over, through the Redis store and the cluster's user counts: every message must
// arrive exactly once, and those kept before the login first, in order.
func TestInboxLoginRaceAcrossNodes(t *testing.T) {
	a, b, _ := threeNodes(t)
	const rounds, before, during = 10, 3, 30
	for r := range rounds {
		user := fmt.Sprintf("u%d", r)
		var all []*switchboard.Message
		for i := range before + during {
			all = append(all, msg(t, typ, i))
		}
		for _, m := range all[:before] {
			if err := a.m.SendToUser(context.Background(), user, m, switchboard.KeepIfOffline); err != nil {
				t.Fatal(err)
			}
		}
		pubErr := make(chan error, 1)
		go func() {
			for _, m := range all[before:] {
				if err := a.m.SendToUser(context.Background(), user, m, switchboard.KeepIfOffline); err != nil {
					pubErr <- err
					return
				}
			}
			pubErr <- nil
		}()
		c := b.login(user)
		got := map[int]int{}
		for k := 1; k <= before+during; k++ {
			f, err := c.tryRead(10 * time.Second)
			if err != nil {
				t.Fatalf("round %d: %d of %d messages arrived (%v), then: %v", r, k-1, before+during, got, err)
			}
			n, ok := f.field("n").(float64)
			if f.Type != typ || !ok {
				t.Fatalf("round %d: unexpected %s", r, f.raw)
			}
			if k <= before && int(n) != k-1 {
				t.Fatalf("round %d: frame %d is n=%v; the kept messages must come first, in order", r, k, n)
			}
			got[int(n)]++
		}
		if err := <-pubErr; err != nil {
			t.Fatal(err)
		}
		marker(t, a, c, user)
		for i := range before + during {
			if got[i] != 1 {
				t.Fatalf("round %d: n=%d arrived %d times", r, i, got[i])
			}
		}
		_ = c.ws.CloseNow()
	}
}

// lockedBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInboxPerNodeWarning: in a cluster whose inboxes default to each node's memory, the
// Manager says so, as a user logging in on another node would miss what was kept.
func TestInboxPerNodeWarning(t *testing.T) {
	url := testenv.RedisURL(t)
	for _, tc := range []struct {
		name  string
		cfg   func(b *Broker) switchboard.Config
		warns bool
	}{
		{"cluster store, inboxes in memory", func(b *Broker) switchboard.Config {
			return switchboard.Config{Cluster: b, Inbox: switchboard.InboxConfig{Types: []string{typ}}}
		}, true},
		{"cluster store, shared inbox store", func(b *Broker) switchboard.Config {
			return switchboard.Config{Cluster: b, Inbox: switchboard.InboxConfig{Types: []string{typ}, Store: b.Inbox()}}
		}, false},
		{"the Redis broker keeps the inboxes", func(b *Broker) switchboard.Config {
			return switchboard.Config{Broker: b, Inbox: switchboard.InboxConfig{Types: []string{typ}}}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			b := newBroker(t, url, uniquePrefix(t))
			t.Cleanup(func() { _ = b.Close() })
			var logs lockedBuffer
			cfg := tc.cfg(b)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			m := switchboard.New(cfg)
			if err := m.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(logs.String(), "Inbox.Store should be shared"); got != tc.warns {
				t.Fatalf("warned: %v, want %v; logs:\n%s", got, tc.warns, logs.String())
			}
		})
	}
}

// TestInboxStoreDown: with the inbox's Redis unreachable, a send to an offline user reports
// that it could not be kept (ErrNotKept), a login still completes (without its inbox) and
// gets live messages, and a send to a user online on this node, which needs no store, goes
// through.
func TestInboxStoreDown(t *testing.T) {
	leakCheck(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	dead := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = dead.Close() })

	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{
		ConnRatePerIP: -1, Authenticator: jwt, Logger: slog.New(slog.DiscardHandler),
		Inbox: switchboard.InboxConfig{Store: NewInbox(dead, uniquePrefix(t))},
	})
	srv := httptest.NewServer(m)
	t.Cleanup(func() {
		_ = m.Shutdown(context.Background())
		srv.Close()
	})
	n := &node{t: t, m: m, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	ctx := context.Background()

	if err := m.SendToUser(ctx, "bob", msg(t, typ, 1), switchboard.KeepIfOffline); !errors.Is(err, switchboard.ErrNotKept) {
		t.Fatalf("send to an offline user with the store down: %v, want ErrNotKept", err)
	}
	alice := n.login("alice") // the inbox cannot be read: the login goes on without it
	if err := m.SendToUser(ctx, "alice", msg(t, typ, 2), switchboard.KeepIfOffline); err != nil {
		t.Fatalf("send to an online user: %v (nothing needs keeping)", err)
	}
	alice.expect(typ, 2)
	marker(t, n, alice, "alice")
}

// FuzzInboxEntry feeds arbitrary list entries, as Redis could hold them after a bug or a
// foreign write, to the entry decoder: it must return a message or an error, never panic,
// and an entry it writes itself must come back as the same message.
func FuzzInboxEntry(f *testing.F) {
	f.Add("1700000000000:2:ab{\"type\":\"EVENT\",\"id\":\"ab\"}")
	f.Add("1:0:{}")
	f.Add("x:y:z")
	f.Add("12:99:short")
	f.Add("")
	f.Fuzz(func(t *testing.T, e string) {
		msg, err := decodeEntry(e)
		if (msg == nil) == (err == nil) {
			t.Fatalf("decodeEntry(%q) = %v, %v: want exactly one of them", e, msg, err)
		}
		if msg == nil || msg.Type == "" {
			return
		}
		data, err := switchboard.JSONCodec{}.Encode(nil, msg)
		if err != nil {
			return // the codec refuses what it would not send (e.g. invalid UTF-8 kept raw)
		}
		again, err := decodeEntry(fmt.Sprintf("1:%d:%s%s", len(msg.ID), msg.ID, data))
		if err != nil || again.ID != msg.ID || again.Type != msg.Type || !bytes.Equal(again.Payload, msg.Payload) {
			t.Fatalf("round trip of %q: %+v, %v", e, again, err)
		}
	})
}
