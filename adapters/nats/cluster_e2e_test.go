package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	sbnats "github.com/switchboardrt/switchboard/adapters/nats"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// startClusterNode runs a Manager named id on a NATS broker that is also its ClusterStore.
// Heartbeats are frequent so that counts travel quickly; o may set NodeTTL and
// GatherTimeout.
func startClusterNode(t *testing.T, url, prefix, id string, maxPerUser int, o sbnats.Options) *node {
	t.Helper()
	o.URL, o.Prefix, o.Logger = url, prefix, quietLogger()
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 100 * time.Millisecond
	}
	if o.NodeTTL == 0 {
		o.NodeTTL = time.Hour
	}
	if o.GatherTimeout == 0 {
		o.GatherTimeout = 10 * time.Second // only waited out for a dead node
	}
	b, err := sbnats.New(o)
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{
		Broker: b, NodeID: id, MaxConnsPerUser: maxPerUser,
		ConnRatePerIP: -1, Authenticator: jwt, Logger: quietLogger(),
	})
	if m.Config().Cluster != switchboard.ClusterStore(b) {
		t.Fatal("the Manager does not use the NATS broker as its ClusterStore")
	}
	srv := httptest.NewServer(m)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil && !errors.Is(err, switchboard.ErrShutdown) {
			t.Errorf("Shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return &node{t: t, m: m, b: b, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// startCluster starts one node per ID and waits until every node lists them all.
func startCluster(t *testing.T, maxPerUser int, o sbnats.Options, ids ...string) []*node {
	t.Helper()
	url, prefix := testenv.NATSURL(t), uniquePrefix(t)
	var ns []*node
	for _, id := range ids {
		ns = append(ns, startClusterNode(t, url, prefix, id, maxPerUser, o))
	}
	for _, n := range ns {
		waitFor(t, 10*time.Second, n.m.NodeID()+" to see every node", func() bool {
			nodes, err := n.m.Nodes(context.Background())
			return err == nil && len(nodes) == len(ids)
		})
	}
	return ns
}

// presenceOverTheWire asks PRESENCE through c and returns "node/client/user" entries.
func presenceOverTheWire(c *client, topic string) []string {
	c.t.Helper()
	f := c.request("PRESENCE", map[string]any{"topic": topic}, "pr-"+topic, "PRESENCE_RESULT")
	var r struct {
		Clients []switchboard.PresenceInfo `json:"clients"`
	}
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		c.t.Fatalf("PRESENCE_RESULT %s: %v", f.raw, err)
	}
	var out []string
	for _, p := range r.Clients {
		out = append(out, p.Node+"/"+p.ClientID+"/"+p.UserID)
	}
	slices.Sort(out)
	return out
}

// PRESENCE on one node lists the subscribers of every node, each with its node, and
// Manager.Nodes lists every node with its counts.
func TestManagersPresenceAndNodes(t *testing.T) {
	ns := startCluster(t, 32, sbnats.Options{}, "node-a", "node-b", "node-c")
	a, b := ns[0], ns[1]
	onA, onB1, onB2 := a.dial(t), b.dial(t), b.dial(t)
	onB1.authenticate("bob")
	onB1.subscribe("room.1")
	onB2.subscribe("room.1", "lobby")
	onA.subscribe("lobby")

	want := []string{"node-b/" + onB1.id + "/bob", "node-b/" + onB2.id + "/"}
	slices.Sort(want)
	if got := presenceOverTheWire(onA, "room.1"); !slices.Equal(got, want) {
		t.Fatalf("PRESENCE room.1 on node-a = %v, want %v", got, want)
	}
	want = []string{"node-a/" + onA.id + "/", "node-b/" + onB2.id + "/"}
	slices.Sort(want)
	if got := presenceOverTheWire(onB1, "lobby"); !slices.Equal(got, want) {
		t.Fatalf("PRESENCE lobby on node-b = %v, want %v", got, want)
	}

	// node-b's counts reach node-a with its heartbeats.
	waitFor(t, 10*time.Second, "node-b's counts on node-a", func() bool {
		nodes, err := a.m.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "node-b" {
				return n.Connections == 2 && n.Users == 1 && n.Topics == 2 && n.Subscriptions == 3
			}
		}
		return false
	})
	nodes, _ := a.m.Nodes(context.Background())
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	if ids[0] != "node-a" || len(ids) != 3 || nodes[0].Connections != 1 {
		t.Fatalf("Nodes on node-a = %+v, want node-a first (1 connection), then the two others", nodes)
	}
}

// A node whose NATS connection dies without Leave is missing from presence at once and
// from Nodes once its TTL has passed.
func TestManagersNodeDies(t *testing.T) {
	o := sbnats.Options{NodeTTL: 2 * time.Second, GatherTimeout: 3 * time.Second}
	ns := startCluster(t, 32, o, "node-a", "node-b", "node-c")
	a, b, c := ns[0], ns[1], ns[2]
	onA, onB, onC := a.dial(t), b.dial(t), c.dial(t)
	for _, cl := range []*client{onA, onB, onC} {
		cl.subscribe("room")
	}
	if got := presenceOverTheWire(onA, "room"); len(got) != 3 {
		t.Fatalf("PRESENCE before = %v", got)
	}

	c.b.Conn().Close() // node-c is cut off: no goodbye
	want := []string{"node-a/" + onA.id + "/", "node-b/" + onB.id + "/"}
	slices.Sort(want)
	if got := presenceOverTheWire(onA, "room"); !slices.Equal(got, want) {
		t.Fatalf("PRESENCE right after node-c died = %v, want %v", got, want)
	}
	waitFor(t, 20*time.Second, "node-c to leave Nodes", func() bool {
		nodes, err := a.m.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "node-c" {
				return false
			}
		}
		return len(nodes) == 2
	})
}

// Shutdown leaves the cluster: the others drop the node at once, not after its TTL.
func TestManagersShutdownLeaves(t *testing.T) {
	ns := startCluster(t, 32, sbnats.Options{}, "node-a", "node-b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ns[1].m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node-b to be gone (its TTL is an hour)", func() bool {
		nodes, err := ns[0].m.Nodes(context.Background())
		return err == nil && len(nodes) == 1
	})
}

// tryAuthenticate sends AUTHENTICATE as user and returns the reply.
func (c *client) tryAuthenticate(user string) frame {
	c.t.Helper()
	tok, err := auth.NewHMACToken(secret, user, time.Hour, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(map[string]any{"type": "AUTHENTICATE", "payload": map[string]any{"auth": map[string]any{"token": tok}}, "id": "auth-x"})
	return c.expectAny()
}

func (c *client) expectAny() frame {
	c.t.Helper()
	f, err := c.tryRead(10 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for a reply: %v", err)
	}
	return f
}

// MaxConnsPerUser holds across the nodes.
func TestManagersMaxConnsPerUserAcrossNodes(t *testing.T) {
	ns := startCluster(t, 2, sbnats.Options{}, "node-a", "node-b", "node-c")
	a, b, c := ns[0], ns[1], ns[2]
	onA, onB := a.dial(t), b.dial(t)
	onA.authenticate("alice")
	onB.authenticate("alice")

	third := c.dial(t)
	f := third.tryAuthenticate("alice")
	if f.Type != "AUTHENTICATE_FAILURE" || !strings.Contains(string(f.Payload), "too_many_connections") {
		t.Fatalf("third connection of alice on node-c: %s, want AUTHENTICATE_FAILURE too_many_connections", f.raw)
	}
	// A token at the handshake is refused with 429 before the upgrade.
	tok, _ := auth.NewHMACToken(secret, "alice", time.Hour, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, c.url+"?token="+tok, nil)
	if err == nil {
		_ = ws.CloseNow()
		t.Fatal("handshake with alice's token on node-c accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("handshake refused with %v, want 429", resp)
	}
	// Other users are not affected.
	c.dial(t).authenticate("bob")

	// alice's connection on node-a ends: node-c admits one again.
	_ = onA.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, 10*time.Second, "alice's connection on node-a to be gone", func() bool {
		n, err := c.b.UserConns(context.Background(), "alice")
		return err == nil && n == 1
	})
	if f := third.tryAuthenticate("alice"); f.Type != "AUTHENTICATE_SUCCESS" {
		t.Fatalf("alice on node-c after one left: %s", f.raw)
	}
	if f := a.dial(t).tryAuthenticate("alice"); f.Type != "AUTHENTICATE_FAILURE" {
		t.Fatalf("a third connection again: %s", f.raw)
	}
}

// JOIN and LEAVE (Config.PresenceEvents) are publications to their topic, so they reach the
// topic's subscribers on every node: a client on A hears a client on B join, and leave
// when its connection closes.
func TestPresenceEventsAcrossNodes(t *testing.T) {
	url, prefix := testenv.NATSURL(t), uniquePrefix(t)
	events := func(c *switchboard.Config) {
		c.PresenceEvents = func(topic string) bool { return strings.HasPrefix(topic, "room.") }
	}
	a, b := startNodeWith(t, url, prefix, events), startNodeWith(t, url, prefix, events)
	onA, onB := a.dial(t), b.dial(t)
	onB.authenticate("bob")
	onA.subscribe("room.1")
	if f := onA.expect(switchboard.TypeJoin); !strings.Contains(string(f.Payload), `"client_id":"`+onA.id+`"`) {
		t.Fatalf("A's own JOIN: got %s", f.raw)
	}
	onB.subscribe("room.1")
	for _, c := range []*client{onB, onA} {
		f := c.expect(switchboard.TypeJoin)
		if f.Topic != "room.1" || !strings.Contains(string(f.Payload), `"client_id":"`+onB.id+`"`) ||
			!strings.Contains(string(f.Payload), `"user_id":"bob"`) {
			t.Fatalf("JOIN of bob on B: got %s", f.raw)
		}
	}
	_ = onB.ws.Close(websocket.StatusNormalClosure, "")
	if f := onA.expect(switchboard.TypeLeave); !strings.Contains(string(f.Payload), `"client_id":"`+onB.id+`"`) {
		t.Fatalf("LEAVE of bob on B: got %s", f.raw)
	}
}
