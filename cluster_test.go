package switchboard

import (
	"context"
	"testing"
	"time"
)

// Without a ClusterStore, a Manager is a cluster of one: Nodes lists itself with the
// counts of its registry, and presence names it as every subscriber's node.
func TestSingleNode(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t), NodeID: "solo-1"})
	if id := ts.m.NodeID(); id != "solo-1" || ts.m.Config().NodeID != "solo-1" {
		t.Fatalf("NodeID = %q, Config().NodeID = %q, want solo-1", id, ts.m.Config().NodeID)
	}
	if ts.m.Config().Cluster != nil {
		t.Fatal("the memory broker is not a ClusterStore, yet Config().Cluster is set")
	}
	a, b, c, anon := ts.dial(), ts.dial(), ts.dial(), ts.dial()
	a.authenticate(token(t, "alice", time.Hour))
	b.authenticate(token(t, "alice", time.Hour))
	c.authenticate(token(t, "bob", time.Hour))
	a.subscribe("room", "lobby")
	anon.subscribe("room")
	idAnon := prClientID(t, anon)

	nodes, err := ts.m.Nodes(context.Background())
	if err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes = %+v, %v; want this node only", nodes, err)
	}
	n := nodes[0]
	if n.ID != "solo-1" || n.Connections != 4 || n.Users != 2 || n.Topics != 2 || n.Subscriptions != 3 {
		t.Fatalf("Nodes()[0] = %+v, want solo-1 with 4 connections, 2 users, 2 topics, 3 subscriptions", n)
	}
	if n.StartedAt.IsZero() || n.UpdatedAt.Before(n.StartedAt) {
		t.Fatalf("StartedAt %v, UpdatedAt %v", n.StartedAt, n.UpdatedAt)
	}

	r := anon.request(TypePresence, map[string]any{"topic": "room"}, "pr")
	clients, _ := r.field("clients").([]any)
	if r.Type != TypePresenceResult || len(clients) != 2 {
		t.Fatalf("PRESENCE: %s", r.raw)
	}
	for _, x := range clients {
		if x.(map[string]any)["node"] != "solo-1" {
			t.Fatalf("PRESENCE_RESULT entry without this node: %s", r.raw)
		}
	}

	// An anonymous subscriber who authenticates shows up with its user.
	anon.authenticate(token(t, "carol", time.Hour))
	got, err := ts.m.Presence(context.Background(), "room")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range got {
		found = found || (p.ClientID == idAnon && p.UserID == "carol" && p.Node == "solo-1")
	}
	if !found {
		t.Fatalf("Presence = %+v, want %s as carol on solo-1", got, idAnon)
	}
}

// Each Manager without a configured NodeID gets its own random one.
func TestNodeIDDefault(t *testing.T) {
	a, b := startServer(t, Config{}), startServer(t, Config{})
	if a.m.NodeID() == "" || a.m.NodeID() == b.m.NodeID() {
		t.Fatalf("default node IDs %q and %q: want two distinct non-empty IDs", a.m.NodeID(), b.m.NodeID())
	}
	if a.m.Config().NodeID != a.m.NodeID() {
		t.Fatalf("Config().NodeID = %q, NodeID() = %q", a.m.Config().NodeID, a.m.NodeID())
	}
}
