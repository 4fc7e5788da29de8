package redis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// fastBeats makes dead nodes disappear quickly in tests.
var fastBeats = ClusterOptions{HeartbeatInterval: 100 * time.Millisecond, NodeTTL: time.Second}

// startClusterNode is startNode with a node ID, cluster options and a per-user cap.
func startClusterNode(t testing.TB, url, prefix, id string, co ClusterOptions, maxConns int) *node {
	t.Helper()
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{URL: url, Prefix: prefix, Cluster: co})
	if err != nil {
		t.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{Broker: b, ConnRatePerIP: -1, Authenticator: jwt,
		NodeID: id, MaxConnsPerUser: maxConns})
	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	srv := httptest.NewServer(mux)
	n := &node{t: t, m: m, b: b, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil && !errors.Is(err, switchboard.ErrShutdown) && !errors.Is(err, ErrClosed) {
			t.Errorf("Shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return n
}

// cluster3 starts nodes "a", "b" and "c" on the shared Redis under a fresh prefix.
func cluster3(t *testing.T, co ClusterOptions, maxConns int) (a, b, c *node) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	prefix := uniquePrefix(t)
	return startClusterNode(t, url, prefix, "a", co, maxConns),
		startClusterNode(t, url, prefix, "b", co, maxConns),
		startClusterNode(t, url, prefix, "c", co, maxConns)
}

// presenceOf returns m's view of topic as sorted "client@node/user" strings.
func presenceOf(t testing.TB, m *switchboard.Manager, topic string) []string {
	t.Helper()
	ps, err := m.Presence(context.Background(), topic)
	if err != nil {
		t.Fatalf("Presence(%s): %v", topic, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ClientID + "@" + p.Node + "/" + p.UserID
	}
	sort.Strings(out)
	return out
}

func entries(pairs ...string) []string {
	sort.Strings(pairs)
	return pairs
}

func sameList(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// waitPresence waits until m's view of topic is want.
func waitPresence(t testing.TB, m *switchboard.Manager, topic string, want []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = presenceOf(t, m, topic)
		if sameList(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s on node %s: %v, want %v", topic, m.NodeID(), got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodeIDs(t testing.TB, m *switchboard.Manager) []string {
	t.Helper()
	ns, err := m.Nodes(context.Background())
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.ID
	}
	sort.Strings(ids)
	return ids
}

// Clients on A and B subscribe to a topic: every node's Manager.Presence lists both with
// their nodes, a PRESENCE request on A shows the client on B, an anonymous subscriber that
// authenticates is listed with its user, and clients that unsubscribe or disconnect drop out.
func TestPresenceAcrossNodes(t *testing.T) {
	a, b, c := cluster3(t, ClusterOptions{}, 0)
	onA, onB := a.dial("alice"), b.dial("")
	onA.subscribe("room")
	onB.subscribe("room", "other")
	want := entries(onA.id+"@a/alice", onB.id+"@b/")
	for _, n := range []*node{a, b, c} {
		waitPresence(t, n.m, "room", want)
	}

	r := onA.request(switchboard.TypePresence, map[string]any{"topic": "room"}, "pr-1")
	if r.Type != switchboard.TypePresenceResult {
		t.Fatalf("PRESENCE on A: %s", r.raw)
	}
	if !strings.Contains(string(r.raw), `{"client_id":"`+onB.id+`","node":"b"}`) ||
		!strings.Contains(string(r.raw), `{"client_id":"`+onA.id+`","user_id":"alice","node":"a"}`) {
		t.Fatalf("PRESENCE_RESULT on A does not list both clients with their nodes: %s", r.raw)
	}

	// The anonymous client on B authenticates: its subscriptions now carry its user.
	tok, err := auth.NewHMACToken(secret, "bob", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := onB.request(switchboard.TypeAuthenticate, map[string]any{"auth": map[string]any{"token": tok}}, "auth"); f.Type != switchboard.TypeAuthenticateSuccess {
		t.Fatalf("AUTHENTICATE: %s", f.raw)
	}
	waitPresence(t, c.m, "room", entries(onA.id+"@a/alice", onB.id+"@b/bob"))
	waitPresence(t, c.m, "other", entries(onB.id+"@b/bob"))

	onA.unsubscribe("room")
	waitPresence(t, c.m, "room", entries(onB.id+"@b/bob"))
	_ = onB.ws.Close(websocket.StatusNormalClosure, "")
	waitPresence(t, a.m, "room", nil)
	waitPresence(t, c.m, "other", nil)
	if got := presenceOf(t, a.m, "nobody"); len(got) != 0 {
		t.Fatalf("presence of an unused topic: %v", got)
	}
}

// Presence writes of one client are applied in the order they were made: after a burst of
// subscribes and unsubscribes, other nodes see the final state.
func TestPresenceOrder(t *testing.T) {
	a, _, c := cluster3(t, ClusterOptions{}, 0)
	cl := a.dial("")
	for i := 0; i < 20; i++ {
		cl.subscribe("flip")
		cl.unsubscribe("flip")
	}
	cl.subscribe("flip", "flop")
	cl.unsubscribe("flop")
	cl.subscribe("marker")
	// The marker's write was queued last: once C sees it, every earlier write is applied.
	waitPresence(t, c.m, "marker", entries(cl.id+"@a/"))
	if got := presenceOf(t, c.m, "flop"); len(got) != 0 {
		t.Fatalf("flop after the last UNSUBSCRIBE: %v", got)
	}
	if got := presenceOf(t, c.m, "flip"); !sameList(got, entries(cl.id+"@a/")) {
		t.Fatalf("flip: %v", got)
	}
}

// Three nodes list each other with their connection counts; a node that shuts down is
// gone from the others' lists, and its clients from presence, as soon as Shutdown returns.
func TestNodes(t *testing.T) {
	// Fast heartbeats for the counts, a long TTL so that no live node is ever taken for dead.
	a, b, c := cluster3(t, ClusterOptions{HeartbeatInterval: 100 * time.Millisecond, NodeTTL: time.Minute}, 0)
	a.dial("u1")
	b.dial("u1")
	b.dial("u2")
	onC := c.dial("")
	onC.subscribe("x")
	conns := map[string]int{"a": 1, "b": 2, "c": 1}
	users := map[string]int{"a": 1, "b": 2, "c": 0}
	for _, n := range []*node{a, b, c} {
		waitFor(t, 10*time.Second, "node "+n.m.NodeID()+" to see every node's counts", func() bool {
			ns, err := n.m.Nodes(context.Background())
			if err != nil || len(ns) != 3 || ns[0].ID != n.m.NodeID() {
				return false
			}
			for _, info := range ns {
				if info.Connections != conns[info.ID] || info.Users != users[info.ID] || info.StartedAt.IsZero() {
					return false
				}
			}
			return true
		})
	}
	waitPresence(t, a.m, "x", entries(onC.id+"@c/"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := nodeIDs(t, a.m); !sameList(ids, []string{"a", "b"}) {
		t.Fatalf("nodes right after C's shutdown: %v", ids)
	}
	if got := presenceOf(t, b.m, "x"); len(got) != 0 {
		t.Fatalf("presence of C's client right after C's shutdown: %v", got)
	}
}

// A node whose process stops without leaving (its Redis connections closed, no Leave)
// keeps its records in Redis, but the other nodes stop counting it within NodeTTL: it
// leaves their Nodes, presence and user counts, and its records are deleted.
func TestDeadNodeDisappears(t *testing.T) {
	a, _, c := cluster3(t, fastBeats, 0)
	onC := c.dial("zoe")
	onC.subscribe("room")
	waitPresence(t, a.m, "room", entries(onC.id+"@c/zoe"))
	ctx := context.Background()
	if n, err := a.b.UserConns(ctx, "zoe"); err != nil || n != 1 {
		t.Fatalf("UserConns(zoe) = %d, %v; want 1", n, err)
	}

	// The "crash": C's broker stops (heartbeats and writes end), its Manager never leaves.
	if err := c.b.Close(); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, testenv.RedisURL(t))
	// Nothing has read the topic since: C's entry is still there, as after a real crash.
	if ok, err := raw.HExists(ctx, a.b.cl.presenceKey("room"), onC.id).Result(); err != nil || !ok {
		t.Fatalf("C's presence entry should still be in Redis right after the crash (%v, %v)", ok, err)
	}

	waitFor(t, 10*time.Second, "C to leave A's node list", func() bool { return sameList(nodeIDs(t, a.m), []string{"a", "b"}) })
	if got := presenceOf(t, a.m, "room"); len(got) != 0 {
		t.Fatalf("presence of the dead node's client: %v", got)
	}
	if n, err := a.b.UserConns(ctx, "zoe"); err != nil || n != 0 {
		t.Fatalf("UserConns(zoe) after C died = %d, %v; want 0", n, err)
	}
	// The readers deleted what they found dead, and the heartbeats the dead node's record.
	waitFor(t, 10*time.Second, "C's records to be deleted", func() bool {
		p, _ := raw.HExists(ctx, a.b.cl.presenceKey("room"), onC.id).Result()
		u, _ := raw.Exists(ctx, a.b.cl.userKey("zoe")).Result()
		h, _ := raw.HExists(ctx, a.b.cl.hbKey, "c").Result()
		n, _ := raw.HExists(ctx, a.b.cl.nKey, "c").Result()
		return !p && u == 0 && !h && !n
	})
}

// MaxConnsPerUser holds across the cluster: with a cap of 2, a user on A and on B cannot
// open a third connection on C, neither with a token at the handshake (HTTP 429) nor with
// AUTHENTICATE (AUTHENTICATE_FAILURE too_many_connections); once one disconnects, a new
// connection is admitted.
func TestUserCapAcrossNodes(t *testing.T) {
	a, b, c := cluster3(t, ClusterOptions{}, 2)
	onA := a.dial("max")
	b.dial("max")

	tok, err := auth.NewHMACToken(secret, "max", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, c.url+"?token="+tok, nil)
	if err == nil {
		_ = ws.CloseNow()
		t.Fatal("a third connection of the user was accepted on C")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("handshake with the user's token on C: %v, %v; want HTTP 429", resp, err)
	}

	anon := c.dial("")
	f := anon.request(switchboard.TypeAuthenticate, map[string]any{"auth": map[string]any{"token": tok}}, "auth")
	if f.Type != switchboard.TypeAuthenticateFailure || f.field("reason") != "too_many_connections" {
		t.Fatalf("AUTHENTICATE as a third connection: %s", f.raw)
	}
	if c.m.Conn(anon.id).UserID() != "" {
		t.Fatal("the refused connection got the identity anyway")
	}

	_ = onA.ws.Close(websocket.StatusNormalClosure, "")
	// The release is written asynchronously: retry the handshake until it has reached Redis.
	waitFor(t, 10*time.Second, "a connection on C to be admitted after one on A closed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, c.url+"?token="+tok, nil)
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("handshake: %v", err)
			}
			return false
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		// The upgrade answers before the identity is attached: CONNECT_ACK says how it went.
		cl := &client{t: t, ws: ws}
		ack := cl.request(switchboard.TypeConnect, nil, "connect")
		if ack.field("user_id") != "max" {
			t.Fatalf("a connection past the handshake check was refused at admission: %s", ack.raw)
		}
		return true
	})
	if n, err := c.b.UserConns(context.Background(), "max"); err != nil || n != 2 {
		t.Fatalf("UserConns(max) = %d, %v; want 2", n, err)
	}
}

// The cap is checked atomically in Redis: many concurrent acquisitions for one user
// through three brokers admit exactly max of them.
func TestAcquireIsAtomic(t *testing.T) {
	a, b, c := cluster3(t, ClusterOptions{}, 0)
	const max, tries = 5, 60
	var mu sync.Mutex
	var admitted []string
	var wg sync.WaitGroup
	for i := 0; i < tries; i++ {
		br := []*Broker{a.b, b.b, c.b}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("client-%d", i)
			ok, err := br.AcquireUserConn(context.Background(), "racer", id, max)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				admitted = append(admitted, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(admitted) != max {
		t.Fatalf("%d of %d concurrent acquisitions admitted, want %d", len(admitted), tries, max)
	}
	// Acquiring a client already counted succeeds without counting it twice.
	if ok, err := b.b.AcquireUserConn(context.Background(), "racer", admitted[0], max); err != nil || !ok {
		t.Fatalf("acquiring an admitted client again: %v, %v", ok, err)
	}
	if n, err := a.b.UserConns(context.Background(), "racer"); err != nil || n != max {
		t.Fatalf("UserConns = %d, %v; want %d", n, err, max)
	}
	for i := 0; i < tries; i++ {
		_ = []*Broker{a.b, b.b, c.b}[i%3].ReleaseUserConn(context.Background(), "racer", fmt.Sprintf("client-%d", i))
	}
	waitFor(t, 10*time.Second, "every release to be written", func() bool {
		n, err := c.b.UserConns(context.Background(), "racer")
		return err == nil && n == 0
	})
}

// With Redis down, the cap fails open (each node still applies it to its own
// connections), presence requests get an error, and once Redis is back the nodes write
// their state again by themselves.
func TestClusterStateWhenRedisFails(t *testing.T) {
	leakCheck(t)
	r := startPrivateRedis(t)
	prefix := uniquePrefix(t)
	a := startClusterNode(t, r.url(), prefix, "a", fastBeats, 2)
	b := startClusterNode(t, r.url(), prefix, "b", fastBeats, 2)
	sub := a.dial("ann")
	sub.subscribe("room")
	waitPresence(t, b.m, "room", entries(sub.id+"@a/ann"))

	r.stop()
	// Fail open: a second connection of ann on A is admitted (the node's own cap is 2)…
	second := a.dial("ann")
	// …but not a third, which the node's own cap refuses.
	tok, _ := auth.NewHMACToken(secret, "ann", time.Hour, nil)
	f := b.dial("").request(switchboard.TypeAuthenticate, map[string]any{"auth": map[string]any{"token": tok}}, "auth")
	if f.Type != switchboard.TypeAuthenticateSuccess {
		t.Fatalf("with Redis down, a connection of ann on B (1 there) should be admitted: %s", f.raw)
	}
	third := a.dial("")
	f = third.request(switchboard.TypeAuthenticate, map[string]any{"auth": map[string]any{"token": tok}}, "auth")
	if f.Type != switchboard.TypeAuthenticateFailure || f.field("reason") != "too_many_connections" {
		t.Fatalf("with Redis down, a third connection of ann on A: %s", f.raw)
	}
	if pr := sub.request(switchboard.TypePresence, map[string]any{"topic": "room"}, "pr"); pr.Type != switchboard.TypeError || pr.field("code") != "internal" {
		t.Fatalf("PRESENCE with Redis down: %s", pr.raw)
	}
	second.subscribe("room") // made while Redis is down

	// Redis comes back empty: each node starts a new session and writes its state again.
	r.start()
	waitPresence(t, b.m, "room", entries(sub.id+"@a/ann", second.id+"@a/ann"))
	waitFor(t, 10*time.Second, "both nodes listed again", func() bool {
		ns, err := b.m.Nodes(context.Background())
		return err == nil && len(ns) == 2
	})
	waitFor(t, 10*time.Second, "ann's three connections counted again", func() bool {
		n, err := b.b.UserConns(context.Background(), "ann")
		return err == nil && n == 3
	})
}

// Leave and the cluster methods after Close report ErrClosed; a second Join is refused.
func TestClusterStoreLifecycle(t *testing.T) {
	a, _, _ := cluster3(t, ClusterOptions{}, 0)
	if err := a.b.Join(nil); err == nil {
		t.Fatal("a second Join succeeded")
	}
	b, err := New(Options{URL: testenv.RedisURL(t), Prefix: uniquePrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddPresence(context.Background(), "t", switchboard.PresenceInfo{ClientID: "x"}); !errors.Is(err, errNotJoined) {
		t.Fatalf("AddPresence before Join: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Close: %v", err)
	}
	if _, err := b.Nodes(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Nodes after Close: %v", err)
	}
}
