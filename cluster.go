package switchboard

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// NodeInfo describes one live node of a cluster.
type NodeInfo struct {
	ID            string    `json:"id"`
	Connections   int       `json:"connections"`   // live connections on the node
	Users         int       `json:"users"`         // distinct authenticated users on the node
	Topics        int       `json:"topics"`        // topics with at least one subscriber on the node
	Subscriptions int       `json:"subscriptions"` // (connection, topic) pairs on the node
	StartedAt     time.Time `json:"started_at"`
	UpdatedAt     time.Time `json:"updated_at"` // when the node last reported (its last heartbeat)
}

// LocalNode is what a Manager exposes of itself to a ClusterStore: its identity and the
// state of its own connections, read on demand (for heartbeats, or to answer another
// node's question).
type LocalNode interface {
	// ID returns the node's ID (Config.NodeID), unique in the cluster.
	ID() string
	// Info returns the node's current counts.
	Info() NodeInfo
	// Topics returns the topics that have subscribers on this node.
	Topics() []string
	// Presence returns this node's subscribers of topic.
	Presence(topic string) []PresenceInfo
	// UserConns returns how many live connections user has on this node.
	UserConns(user string) int
}

// ClusterStore keeps what the nodes of a cluster share besides publications: which nodes
// are live, who is subscribed to what (presence), and how many connections each user has
// (for Config.MaxConnsPerUser across the cluster). The Manager uses Config.Cluster, or
// Config.Broker when it implements ClusterStore (adapters/redis and adapters/nats do);
// without one, these are the node's own, kept in its registry.
//
// A node that stops without calling Leave (a crash, a kill -9) must disappear from Nodes,
// from Presence and from user counts within a bounded time, documented by the
// implementation. Implementations must be safe for concurrent use.
type ClusterStore interface {
	// Join registers node with the cluster and keeps it registered (heartbeats) until
	// Leave. It is called once, by New, after the broker has started. An error (the
	// store unreachable) is logged by the Manager; the store keeps trying to register the
	// node in the background.
	Join(node LocalNode) error
	// Leave removes the node and everything it registered. It is called by Shutdown,
	// before the broker is closed.
	Leave(ctx context.Context) error

	// AddPresence records that a client of this node subscribed to topic, and
	// RemovePresence that it unsubscribed or disconnected. AddPresence for a client
	// already recorded replaces its entry (the Manager records a client's subscriptions
	// again with its user when an anonymous connection authenticates). They may be
	// carried out asynchronously, but in the order of the calls for one client; errors
	// are logged by the Manager, not returned to the client.
	AddPresence(ctx context.Context, topic string, p PresenceInfo) error
	RemovePresence(ctx context.Context, topic string, clientID string) error
	// Presence returns the subscribers of topic on every live node.
	Presence(ctx context.Context, topic string) ([]PresenceInfo, error)

	// AcquireUserConn counts clientID among user's connections when the user has fewer
	// than max across the cluster, and reports whether it did (max < 0: no cap).
	// ReleaseUserConn forgets it, and may be carried out asynchronously. The Manager
	// calls Acquire before admitting an authenticated connection and Release when it
	// ends. When Acquire fails with an error, the Manager admits the connection under
	// the node's own cap (fail open) and still calls Release when it ends.
	AcquireUserConn(ctx context.Context, user, clientID string, max int) (bool, error)
	ReleaseUserConn(ctx context.Context, user, clientID string) error
	// UserConns returns how many live connections user has across the cluster.
	UserConns(ctx context.Context, user string) (int, error)

	// Nodes lists the live nodes.
	Nodes(ctx context.Context) ([]NodeInfo, error)
}

// clusterTimeout bounds each call the Manager makes to its ClusterStore on behalf of a
// connection, so that a store that hangs cannot hold a connection's goroutine forever.
const clusterTimeout = 5 * time.Second

// localNode is the Manager as its ClusterStore sees it: the node's ID and its own
// connections, read from the registry on demand.
type localNode struct{ m *Manager }

// ID implements LocalNode.
func (n localNode) ID() string { return n.m.nodeID }

// Info implements LocalNode.
func (n localNode) Info() NodeInfo { return n.m.localInfo() }

// Topics implements LocalNode.
func (n localNode) Topics() []string { return n.m.localTopics() }

// Presence implements LocalNode.
func (n localNode) Presence(topic string) []PresenceInfo { return n.m.localPresence(topic) }

// UserConns implements LocalNode.
func (n localNode) UserConns(user string) int { return n.m.reg.userConnCount(user) }

// startCluster settles the node ID and the cluster store, and joins the cluster. New calls
// it once the broker has started, so that the store (often the broker itself) is up.
func (m *Manager) startCluster() {
	if m.cfg.NodeID == "" {
		m.cfg.NodeID = uuid.NewString()
	}
	m.nodeID = m.cfg.NodeID
	m.cluster = m.cfg.Cluster
	if m.cluster == nil {
		m.cluster, _ = m.broker.(ClusterStore)
	}
	m.cfg.Cluster = m.cluster
	if m.cluster == nil {
		return
	}
	if err := m.cluster.Join(localNode{m}); err != nil {
		m.cfg.Logger.Error("switchboard: joining the cluster failed", "node", m.nodeID, "err", err)
	}
}

// leaveCluster tells the store that this node is gone. Shutdown calls it after every
// connection has ended; when ctx has already run out (connections were slow to close),
// the node still gets a short while to leave rather than linger until its heartbeat expires.
func (m *Manager) leaveCluster(ctx context.Context) {
	if m.cluster == nil {
		return
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
	}
	if err := m.cluster.Leave(ctx); err != nil {
		m.cfg.Logger.Warn("switchboard: leaving the cluster failed; other nodes will drop this one when its heartbeat expires",
			"node", m.nodeID, "err", err)
	}
}

// NodeID returns the ID of this node in its cluster (Config.NodeID, or the random one
// New chose).
func (m *Manager) NodeID() string { return m.nodeID }

// Nodes lists the live nodes of the cluster, this one first, with their counts. Without a
// ClusterStore it returns this node only. This node's entry is always read from its own
// registry, so it is current even when the store's copy is a heartbeat old.
func (m *Manager) Nodes(ctx context.Context) ([]NodeInfo, error) {
	self := m.localInfo()
	if m.cluster == nil {
		return []NodeInfo{self}, nil
	}
	nodes, err := m.cluster.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := []NodeInfo{self}
	for _, n := range nodes {
		if n.ID != m.nodeID {
			out = append(out, n)
		}
	}
	return out, nil
}

// localInfo returns this node's counts.
func (m *Manager) localInfo() NodeInfo {
	topics, subs := m.reg.topicCount()
	users := 0
	for i := range m.reg.users {
		s := &m.reg.users[i]
		s.mu.RLock()
		users += len(s.m)
		s.mu.RUnlock()
	}
	return NodeInfo{
		ID:            m.nodeID,
		Connections:   int(m.stats.connections.Load()),
		Users:         users,
		Topics:        topics,
		Subscriptions: subs,
		StartedAt:     m.start,
		UpdatedAt:     time.Now(),
	}
}

// localTopics returns the topics with at least one subscriber on this node.
func (m *Manager) localTopics() []string {
	var out []string
	for i := range m.reg.topics {
		s := &m.reg.topics[i]
		s.mu.RLock()
		for t := range s.m {
			out = append(out, t)
		}
		s.mu.RUnlock()
	}
	return out
}

// localPresence returns this node's subscribers of topic.
func (m *Manager) localPresence(topic string) []PresenceInfo {
	s := &m.reg.topics[shardOf(topic)]
	s.mu.RLock()
	out := make([]PresenceInfo, 0, len(s.m[topic]))
	for c := range s.m[topic] {
		out = append(out, PresenceInfo{ClientID: c.id, UserID: c.UserID(), Node: m.nodeID})
	}
	s.mu.RUnlock()
	return out
}

// clusterPresence returns topic's subscribers on every node: this node's from the
// registry (so a client sees its own subscription at once, even before an asynchronous
// store has written it), the others' from the store.
func (m *Manager) clusterPresence(ctx context.Context, topic string) ([]PresenceInfo, error) {
	local := m.localPresence(topic)
	if m.cluster == nil {
		return local, nil
	}
	all, err := m.cluster.Presence(ctx, topic)
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.Node != m.nodeID {
			local = append(local, p)
		}
	}
	return local, nil
}

// clusterSubscribed records c's new subscription to topic in the cluster store. The
// registry has it already: a store that rebuilds its records from LocalNode, and then
// applies the calls queued meanwhile, ends up with the registry's state.
func (m *Manager) clusterSubscribed(topic string, c *Conn) {
	if m.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, clusterTimeout)
	defer cancel()
	if err := m.cluster.AddPresence(ctx, topic, PresenceInfo{ClientID: c.id, UserID: c.UserID(), Node: m.nodeID}); err != nil {
		m.cfg.Logger.Warn("switchboard: presence not recorded in the cluster", "topic", topic, "client", c.id, "err", err)
	}
}

// clusterUnsubscribed removes c's subscription to topic from the cluster store.
func (m *Manager) clusterUnsubscribed(topic string, c *Conn) {
	if m.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, clusterTimeout)
	defer cancel()
	if err := m.cluster.RemovePresence(ctx, topic, c.id); err != nil {
		m.cfg.Logger.Warn("switchboard: presence not removed from the cluster", "topic", topic, "client", c.id, "err", err)
	}
}

// userAtCap reports whether user already has Config.MaxConnsPerUser connections, on this
// node or, with a cluster store, across the cluster. It is the early check at the
// handshake, which answers HTTP 429; admitUser makes the binding one.
func (m *Manager) userAtCap(ctx context.Context, user string) bool {
	max := m.cfg.MaxConnsPerUser
	if max < 0 {
		return false
	}
	if m.reg.userConnCount(user) >= max {
		return true
	}
	if m.cluster == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	n, err := m.cluster.UserConns(ctx, user)
	if err != nil {
		return false // fail open, as admitUser does (and logs)
	}
	return n >= max
}

// admitUser indexes c under user, the connection's first identity, within
// Config.MaxConnsPerUser: first on this node, then across the cluster when there is a
// store. A store that fails (unreachable) does not lock users out: the connection is
// admitted under the node's own cap and a warning is logged (fail open). It runs under
// c.subMu, and reports whether c is the user's first connection on this node.
func (c *Conn) admitUser(user string) (first bool, err error) {
	m := c.m
	max := m.cfg.MaxConnsPerUser
	added, first := m.reg.addUser(user, c, max)
	if !added {
		return false, fmt.Errorf("%w (max %d)", ErrTooManyConnections, max)
	}
	if m.cluster == nil {
		return first, nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, clusterTimeout)
	ok, err := m.cluster.AcquireUserConn(ctx, user, c.id, max)
	cancel()
	switch {
	case err != nil:
		m.cfg.Logger.Warn("switchboard: cluster-wide connection cap not checked (admitted under the node's own cap)",
			"user", user, "client", c.id, "err", err)
	case !ok:
		m.reg.removeUser(user, c)
		return false, fmt.Errorf("%w (max %d across the cluster)", ErrTooManyConnections, max)
	}
	return first, nil
}

// clusterIdentified records again, now with its user, the subscriptions c made while it
// was anonymous. It runs under c.subMu, once c's identity is set.
func (m *Manager) clusterIdentified(c *Conn) {
	for _, t := range c.subs {
		m.clusterSubscribed(t, c)
	}
}

// forgetUser removes c from user's connections, on this node and in the cluster store.
func (m *Manager) forgetUser(user string, c *Conn) {
	m.reg.removeUser(user, c)
	if m.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, clusterTimeout)
	defer cancel()
	if err := m.cluster.ReleaseUserConn(ctx, user, c.id); err != nil {
		m.cfg.Logger.Warn("switchboard: user connection not released in the cluster", "user", user, "client", c.id, "err", err)
	}
}
