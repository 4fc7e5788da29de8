package nats_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard"
	sbnats "github.com/switchboardrt/switchboard/adapters/nats"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// localNode is a switchboard.LocalNode whose state the test sets: the node's registry, as
// the Manager would expose it.
type localNode struct {
	id string

	mu       sync.Mutex
	conns    int
	presence map[string][]switchboard.PresenceInfo
	users    map[string]int
}

func newLocalNode(id string) *localNode {
	return &localNode{id: id, presence: make(map[string][]switchboard.PresenceInfo), users: make(map[string]int)}
}

func (n *localNode) ID() string { return n.id }

func (n *localNode) Info() switchboard.NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return switchboard.NodeInfo{ID: n.id, Connections: n.conns, Topics: len(n.presence)}
}

func (n *localNode) Topics() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for t := range n.presence {
		out = append(out, t)
	}
	return out
}

func (n *localNode) Presence(topic string) []switchboard.PresenceInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.presence[topic])
}

func (n *localNode) UserConns(user string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.users[user]
}

func (n *localNode) subscribe(topic string, clients ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range clients {
		n.presence[topic] = append(n.presence[topic], switchboard.PresenceInfo{ClientID: c, UserID: "u-" + c})
	}
}

func (n *localNode) setConns(k int) {
	n.mu.Lock()
	n.conns = k
	n.mu.Unlock()
}

func (n *localNode) addUserConn(user string, delta int) {
	n.mu.Lock()
	n.users[user] += delta
	n.mu.Unlock()
}

type member struct {
	b    *sbnats.Broker
	node *localNode
}

// clusterOpts are options for tests that need every live node's answer: a gather window
// far longer than any answer takes, which a gather only waits out for a dead node.
func clusterOpts() sbnats.Options {
	return sbnats.Options{GatherTimeout: 10 * time.Second}
}

// joinMembers starts and joins n brokers, with node IDs name-0…, and waits until each
// knows all the others.
func joinMembers(t *testing.T, url, prefix string, n int, o sbnats.Options) []*member {
	t.Helper()
	var ms []*member
	for i := 0; i < n; i++ {
		ms = append(ms, joinMember(t, url, prefix, fmt.Sprintf("node-%d", i), o))
	}
	waitForNodes(t, ms, n)
	return ms
}

func joinMember(t *testing.T, url, prefix, id string, o sbnats.Options) *member {
	t.Helper()
	o.URL, o.Prefix, o.Logger = url, prefix, quietLogger()
	b, err := sbnats.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Start(func(*switchboard.Publication) {}); err != nil {
		t.Fatal(err)
	}
	m := &member{b: b, node: newLocalNode(id)}
	if err := b.Join(m.node); err != nil {
		t.Fatal(err)
	}
	return m
}

func nodeIDs(t testing.TB, b *sbnats.Broker) []string {
	t.Helper()
	nodes, err := b.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func waitForNodes(t *testing.T, ms []*member, n int) {
	t.Helper()
	for _, m := range ms {
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to see %d nodes", m.node.id, n), func() bool {
			return len(nodeIDs(t, m.b)) == n
		})
	}
}

func presenceIDs(t testing.TB, b *sbnats.Broker, topic string) []string {
	t.Helper()
	list, err := b.Presence(context.Background(), topic)
	if err != nil {
		t.Fatalf("Presence(%q): %v", topic, err)
	}
	var out []string
	for _, p := range list {
		out = append(out, p.Node+"/"+p.ClientID)
	}
	slices.Sort(out)
	return out
}

func TestClusterNodes(t *testing.T) {
	url := testenv.NATSURL(t)
	o := clusterOpts()
	o.HeartbeatInterval = 100 * time.Millisecond
	o.NodeTTL = time.Hour // only a goodbye can remove a node within this test
	ms := joinMembers(t, url, uniquePrefix(t), 3, o)
	if got := nodeIDs(t, ms[0].b); !slices.Equal(got, []string{"node-0", "node-1", "node-2"}) {
		t.Fatalf("Nodes = %v", got)
	}

	// The counts travel with the heartbeats.
	ms[1].node.setConns(7)
	waitFor(t, 10*time.Second, "node-1's count to reach node-0", func() bool {
		nodes, _ := ms[0].b.Nodes(context.Background())
		for _, n := range nodes {
			if n.ID == "node-1" {
				return n.Connections == 7 && !n.UpdatedAt.IsZero()
			}
		}
		return false
	})
	// A node's own entry is current, without waiting for a heartbeat.
	ms[0].node.setConns(3)
	nodes, _ := ms[0].b.Nodes(context.Background())
	if nodes[0].ID != "node-0" || nodes[0].Connections != 3 {
		t.Fatalf("own entry %+v, want node-0 with 3 connections", nodes[0])
	}

	// Leave says goodbye: the others drop the node, though its TTL is an hour.
	if err := ms[2].b.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node-2 to leave", func() bool {
		return slices.Equal(nodeIDs(t, ms[0].b), []string{"node-0", "node-1"}) &&
			slices.Equal(nodeIDs(t, ms[1].b), []string{"node-0", "node-1"})
	})
	if _, err := ms[2].b.Nodes(context.Background()); !errors.Is(err, sbnats.ErrNotJoined) {
		t.Fatalf("Nodes after Leave: %v, want ErrNotJoined", err)
	}
	if err := ms[2].b.Leave(context.Background()); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
}

// A node that stops without Leave is dropped after NodeTTL, and joins again afterwards.
func TestClusterNodeTTL(t *testing.T) {
	url := testenv.NATSURL(t)
	o := clusterOpts()
	o.HeartbeatInterval, o.NodeTTL = 100*time.Millisecond, 500*time.Millisecond
	prefix := uniquePrefix(t)
	ms := joinMembers(t, url, prefix, 2, o)

	ms[1].b.Conn().Close() // no goodbye
	waitFor(t, 10*time.Second, "node-1 to expire", func() bool {
		return slices.Equal(nodeIDs(t, ms[0].b), []string{"node-0"})
	})
	// The same ID comes back, as after a restart.
	back := joinMember(t, url, prefix, "node-1", o)
	waitForNodes(t, []*member{ms[0], back}, 2)
}

func TestClusterOptions(t *testing.T) {
	_, err := sbnats.New(sbnats.Options{URL: testenv.NATSURL(t), HeartbeatInterval: time.Second, NodeTTL: time.Second})
	if err == nil {
		t.Fatal("New accepted a NodeTTL no longer than HeartbeatInterval")
	}
}

func TestClusterPresence(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 3, clusterOpts())
	topic := "room.1 >*" // characters with a meaning in subjects
	ms[0].node.subscribe(topic, "a1")
	ms[1].node.subscribe(topic, "b1", "b2")
	ms[2].node.subscribe("other", "c1")

	want := []string{"node-0/a1", "node-1/b1", "node-1/b2"}
	for _, m := range ms {
		if got := presenceIDs(t, m.b, topic); !slices.Equal(got, want) {
			t.Errorf("%s: Presence = %v, want %v", m.node.id, got, want)
		}
	}
	list, _ := ms[2].b.Presence(context.Background(), topic)
	for _, p := range list {
		if p.UserID != "u-"+p.ClientID {
			t.Errorf("entry %+v lost its user", p)
		}
	}
	if got := presenceIDs(t, ms[2].b, "nobody"); len(got) != 0 {
		t.Errorf("Presence(nobody) = %v", got)
	}
	// Presence stores nothing: Add/Remove have nothing to do and do not fail.
	if err := ms[0].b.AddPresence(context.Background(), topic, switchboard.PresenceInfo{ClientID: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := ms[0].b.RemovePresence(context.Background(), topic, "x"); err != nil {
		t.Fatal(err)
	}
}

// An answer far larger than a NATS message (the server's max_payload is 1 MiB by
// default) arrives whole, in parts.
func TestClusterPresenceLarge(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 2, clusterOpts())
	const n = 30000
	pad := strings.Repeat("x", 60)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%06d", pad, i)
	}
	ms[1].node.subscribe("big", ids...) // about 4 MB of JSON
	list, err := ms[0].b.Presence(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, n)
	for _, p := range list {
		if p.Node != "node-1" || seen[p.ClientID] {
			t.Fatalf("unexpected or repeated entry %+v", p)
		}
		seen[p.ClientID] = true
	}
	if len(seen) != n {
		t.Fatalf("got %d subscribers, want %d", len(seen), n)
	}
}

// A node that dies without Leave stops answering: it is missing from Presence at once,
// while Nodes still lists it until its TTL ends.
func TestClusterPresenceDeadNode(t *testing.T) {
	url := testenv.NATSURL(t)
	o := clusterOpts()
	o.NodeTTL = time.Hour
	o.GatherTimeout = 2 * time.Second // waited out once, for the dead node
	ms := joinMembers(t, url, uniquePrefix(t), 3, o)
	for _, m := range ms {
		m.node.subscribe("room", "on-"+m.node.id)
	}
	ms[2].b.Conn().Close()

	got := presenceIDs(t, ms[0].b, "room")
	if want := []string{"node-0/on-node-0", "node-1/on-node-1"}; !slices.Equal(got, want) {
		t.Fatalf("Presence = %v, want %v", got, want)
	}
	if ids := nodeIDs(t, ms[0].b); len(ids) != 3 {
		t.Fatalf("Nodes = %v: node-2 expired before its TTL", ids)
	}
}

func TestClusterUserConns(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 3, clusterOpts())
	ms[0].node.addUserConn("alice", 1)
	ms[2].node.addUserConn("alice", 2)
	ms[1].node.addUserConn("bob", 1)
	for _, m := range ms {
		if n, err := m.b.UserConns(context.Background(), "alice"); err != nil || n != 3 {
			t.Errorf("%s: UserConns(alice) = %d, %v; want 3", m.node.id, n, err)
		}
	}
	if n, _ := ms[0].b.UserConns(context.Background(), "nobody.*"); n != 0 {
		t.Errorf("UserConns(nobody) = %d", n)
	}
}

// login does what a Manager does for an authenticated connection: acquire, and on success
// register the connection.
func (m *member) login(t *testing.T, user, clientID string, max int) bool {
	t.Helper()
	ok, err := m.b.AcquireUserConn(context.Background(), user, clientID, max)
	if err != nil {
		t.Fatalf("AcquireUserConn: %v", err)
	}
	if ok {
		m.node.addUserConn(user, 1)
	}
	return ok
}

func (m *member) logout(t *testing.T, user, clientID string) {
	t.Helper()
	m.node.addUserConn(user, -1)
	if err := m.b.ReleaseUserConn(context.Background(), user, clientID); err != nil {
		t.Fatal(err)
	}
}

func TestClusterAcquireUserConn(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 3, clusterOpts())
	a, b, c := ms[0], ms[1], ms[2]
	if !a.login(t, "alice", "a1", 2) || !b.login(t, "alice", "b1", 2) {
		t.Fatal("first two connections refused")
	}
	if c.login(t, "alice", "c1", 2) {
		t.Fatal("third connection admitted with a cap of 2")
	}
	if !c.login(t, "bob", "c2", 2) {
		t.Fatal("another user refused")
	}
	if ok, _ := a.b.AcquireUserConn(context.Background(), "alice", "a1", 2); !ok {
		t.Fatal("acquiring an admitted connection again refused")
	}
	a.logout(t, "alice", "a1")
	if !c.login(t, "alice", "c1", 2) {
		t.Fatal("connection refused after one left")
	}
	if !c.login(t, "alice", "c3", -1) {
		t.Fatal("refused without a cap")
	}
}

// A connection acquired on one node but not yet in its registry counts already: the
// window between AcquireUserConn and the Manager's registering it is covered.
func TestClusterAcquireCountsHeldConnections(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 2, clusterOpts())
	if ok, err := ms[0].b.AcquireUserConn(context.Background(), "alice", "a1", 1); !ok || err != nil {
		t.Fatalf("AcquireUserConn: %v, %v", ok, err)
	}
	if ms[1].login(t, "alice", "b1", 1) {
		t.Fatal("admitted while the other node holds the only place")
	}
	if n, _ := ms[1].b.UserConns(context.Background(), "alice"); n != 0 {
		t.Fatalf("UserConns = %d; it counts registered connections only", n)
	}
	_ = ms[0].b.ReleaseUserConn(context.Background(), "alice", "a1")
	if !ms[1].login(t, "alice", "b1", 1) {
		t.Fatal("refused after the release")
	}
}

// Logins racing on several nodes never exceed the cap.
func TestClusterAcquireRace(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 3, clusterOpts())
	const max, rounds = 2, 20
	for r := 0; r < rounds; r++ {
		user := fmt.Sprintf("user-%d", r)
		var admitted atomic.Int32
		var wg sync.WaitGroup
		for i, m := range ms {
			for k := 0; k < 2; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := m.b.AcquireUserConn(context.Background(), user, fmt.Sprintf("c%d-%d", i, k), max)
					if err != nil {
						t.Error(err)
					}
					if ok {
						admitted.Add(1)
						m.node.addUserConn(user, 1)
					}
				}()
			}
		}
		wg.Wait()
		if n := admitted.Load(); n > max {
			t.Fatalf("round %d: %d of 6 simultaneous logins admitted with a cap of %d", r, n, max)
		}
	}
}

func TestClusterNotJoinedAndCancelled(t *testing.T) {
	url := testenv.NATSURL(t)
	b := newBroker(t, url, uniquePrefix(t))
	defer b.Close()
	ctx := context.Background()
	if _, err := b.Presence(ctx, "x"); !errors.Is(err, sbnats.ErrNotJoined) {
		t.Errorf("Presence before Join: %v", err)
	}
	if _, err := b.AcquireUserConn(ctx, "u", "c", 1); !errors.Is(err, sbnats.ErrNotJoined) {
		t.Errorf("AcquireUserConn before Join: %v", err)
	}
	if err := b.Join(newLocalNode("")); err == nil {
		t.Error("Join accepted a node without an ID")
	}

	ms := joinMembers(t, url, uniquePrefix(t), 2, clusterOpts())
	if err := ms[0].b.Join(newLocalNode("again")); err == nil {
		t.Error("second Join accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ms[0].b.Presence(cancelled, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Presence with a cancelled context: %v", err)
	}
	if ok, err := ms[0].b.AcquireUserConn(cancelled, "u", "c", 1); ok || err == nil {
		t.Errorf("AcquireUserConn with a cancelled context: %v, %v", ok, err)
	}
	// The failed acquisition was not kept.
	if !ms[1].login(t, "u", "c9", 1) {
		t.Error("a failed acquisition still holds its place")
	}
}

// Garbage on the cluster's subjects is logged and dropped; the cluster keeps working.
func TestClusterMalformedMessages(t *testing.T) {
	url := testenv.NATSURL(t)
	prefix := uniquePrefix(t)
	ms := joinMembers(t, url, prefix, 2, clusterOpts())
	ms[1].node.subscribe("t", "b1")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	junk := [][2]string{
		{ms[0].b.NodesSubject(), "{"},
		{ms[0].b.NodesSubject(), `{"node":{"id":""}}`},
		{ms[0].b.NodesSubject(), `{"node":{"id":"` + strings.Repeat("x", 1000) + `"}}`},
		{ms[0].b.NodesSubject(), `{"node":{"id":5}}`},
		{prefix + ".presence.!!!", `{"from":"x"}`},
		{ms[0].b.PresenceSubject("t"), "not json"},
		{ms[0].b.UserConnsSubject("u"), `[]`},
	}
	for _, j := range junk {
		if err := nc.PublishRequest(j[0], nc.NewInbox(), []byte(j[1])); err != nil {
			t.Fatal(err)
		}
	}
	// Bogus answers to a real question, raced against the real ones.
	sub, err := nc.Subscribe(prefix+".presence.*", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"node":"node-1","part":3,"parts":2}`))
		_ = m.Respond([]byte(`garbage`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := presenceIDs(t, ms[0].b, "t"); !slices.Equal(got, []string{"node-1/b1"}) {
		t.Fatalf("Presence = %v", got)
	}
	if got := nodeIDs(t, ms[0].b); !slices.Equal(got, []string{"node-0", "node-1"}) {
		t.Fatalf("Nodes = %v", got)
	}
}

// With NATS down, cluster questions and Nodes fail rather than answer for this node alone.
func TestClusterNATSDown(t *testing.T) {
	srv := startPrivateServer(t)
	ms := joinMembers(t, srv.url(), uniquePrefix(t), 2, clusterOpts())
	srv.stop()
	waitFor(t, 10*time.Second, "the broker to notice", func() bool { return !ms[0].b.Healthy() })
	if _, err := ms[0].b.Presence(context.Background(), "x"); !errors.Is(err, sbnats.ErrNotConnected) {
		t.Fatalf("Presence with NATS down: %v, want ErrNotConnected", err)
	}
	if ok, err := ms[0].b.AcquireUserConn(context.Background(), "u", "c", 5); ok || !errors.Is(err, sbnats.ErrNotConnected) {
		t.Fatalf("AcquireUserConn with NATS down: %v, %v", ok, err)
	}
	if _, err := ms[0].b.Nodes(context.Background()); !errors.Is(err, sbnats.ErrNotConnected) {
		t.Fatalf("Nodes with NATS down: %v, want ErrNotConnected", err)
	}
}

// Join's heartbeat goroutine and subscriptions end with Close, with or without Leave.
func TestClusterCloseLeavesNoGoroutines(t *testing.T) {
	url := testenv.NATSURL(t)
	for _, leave := range []bool{false, true} {
		base := runtime.NumGoroutine()
		b := newBroker(t, url, uniquePrefix(t))
		if err := b.Start(func(*switchboard.Publication) {}); err != nil {
			t.Fatal(err)
		}
		if err := b.Join(newLocalNode("n")); err != nil {
			t.Fatal(err)
		}
		if leave {
			if err := b.Leave(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
	}
}

// A node that failed to answer is not waited for again until it sends a heartbeat: with
// an hour-long window, only the first question, bounded by its context, waits for it.
func TestClusterDeadNodeWaitedForOnce(t *testing.T) {
	url := testenv.NATSURL(t)
	o := clusterOpts()
	o.NodeTTL, o.GatherTimeout = time.Hour, time.Hour
	ms := joinMembers(t, url, uniquePrefix(t), 3, o)
	ms[1].node.subscribe("room", "b1")
	ms[2].node.subscribe("room", "c1")
	ms[2].b.Conn().Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	list, err := ms[0].b.Presence(ctx, "room")
	if err != nil || len(list) != 1 || list[0].ClientID != "b1" {
		t.Fatalf("first Presence = %+v, %v; want b1 only", list, err)
	}
	type result struct {
		list []switchboard.PresenceInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		list, err := ms[0].b.Presence(context.Background(), "room")
		done <- result{list, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || len(r.list) != 1 || r.list[0].ClientID != "b1" {
			t.Fatalf("second Presence = %+v, %v; want b1 only", r.list, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second question still waits for the dead node")
	}
	// It still counts as live for Nodes until its TTL.
	if ids := nodeIDs(t, ms[0].b); len(ids) != 3 {
		t.Fatalf("Nodes = %v", ids)
	}
}

// Nodes learn of one another from the first heartbeat and its answers, not at the next
// tick: with an hour between heartbeats, every node still lists every other.
func TestClusterNodesLearnAtOnce(t *testing.T) {
	url := testenv.NATSURL(t)
	o := clusterOpts()
	o.HeartbeatInterval = time.Hour
	ms := joinMembers(t, url, uniquePrefix(t), 3, o)
	for _, m := range ms {
		if got := nodeIDs(t, m.b); !slices.Equal(got, []string{"node-0", "node-1", "node-2"}) {
			t.Fatalf("%s: Nodes = %v", m.node.id, got)
		}
	}
}

// lockedBuffer collects log output written from NATS handler goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// Two processes with one node ID are a misconfiguration that each of them reports.
func TestClusterDuplicateNodeID(t *testing.T) {
	url, prefix := testenv.NATSURL(t), uniquePrefix(t)
	var logs lockedBuffer
	o := clusterOpts()
	o.URL, o.Prefix, o.Logger = url, prefix, slog.New(slog.NewTextHandler(&logs, nil))
	b, err := sbnats.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Join(newLocalNode("twin")); err != nil {
		t.Fatal(err)
	}
	// A marker after its first heartbeat, on the same connection: once the marker is
	// handled, so is the echo of the heartbeat.
	if err := b.Conn().Publish(b.NodesSubject(), []byte("marker")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the marker", func() bool { return strings.Contains(logs.String(), "malformed heartbeat") })
	if strings.Contains(logs.String(), "another node uses this node's ID") {
		t.Fatal("its own heartbeat taken for another node's")
	}
	joinMember(t, url, prefix, "twin", clusterOpts())
	waitFor(t, 10*time.Second, "the duplicate ID to be reported", func() bool {
		return strings.Contains(logs.String(), "another node uses this node's ID")
	})
}

// Names too long for a subject line (the server closes a connection whose PUB line
// exceeds max_control_line, 4 KiB by default) are asked about by hash, and answered.
func TestClusterLongNames(t *testing.T) {
	url := testenv.NATSURL(t)
	ms := joinMembers(t, url, uniquePrefix(t), 2, clusterOpts())
	long := strings.Repeat("u", 10000)
	ms[1].node.addUserConn(long, 2)
	ms[1].node.subscribe(long, "b1")
	if n, err := ms[0].b.UserConns(context.Background(), long); err != nil || n != 2 {
		t.Fatalf("UserConns(long user) = %d, %v; want 2", n, err)
	}
	if got := presenceIDs(t, ms[0].b, long); !slices.Equal(got, []string{"node-1/b1"}) {
		t.Fatalf("Presence(long topic) = %v", got)
	}
	if other := strings.Repeat("u", 9999) + "v"; ms[0].b.UserConnsSubject(other) == ms[0].b.UserConnsSubject(long) {
		t.Fatal("two long names share a subject")
	}
	if !ms[0].b.Healthy() || !ms[1].b.Healthy() {
		t.Fatal("a connection to NATS was lost")
	}
}
