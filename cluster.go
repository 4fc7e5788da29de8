package switchboard

import (
	"context"
	"time"
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
	// Leave. It is called once, by New, after the broker has started.
	Join(node LocalNode) error
	// Leave removes the node and everything it registered. It is called by Shutdown,
	// before the broker is closed.
	Leave(ctx context.Context) error

	// AddPresence records that a client of this node subscribed to topic, and
	// RemovePresence that it unsubscribed or disconnected. They may be carried out
	// asynchronously; errors are logged by the Manager, not returned to the client.
	AddPresence(ctx context.Context, topic string, p PresenceInfo) error
	RemovePresence(ctx context.Context, topic string, clientID string) error
	// Presence returns the subscribers of topic on every live node.
	Presence(ctx context.Context, topic string) ([]PresenceInfo, error)

	// AcquireUserConn counts clientID among user's connections when the user has fewer
	// than max across the cluster, and reports whether it did (max < 0: no cap).
	// ReleaseUserConn forgets it. The Manager calls Acquire before admitting an
	// authenticated connection and Release when it ends.
	AcquireUserConn(ctx context.Context, user, clientID string, max int) (bool, error)
	ReleaseUserConn(ctx context.Context, user, clientID string) error
	// UserConns returns how many live connections user has across the cluster.
	UserConns(ctx context.Context, user string) (int, error)

	// Nodes lists the live nodes.
	Nodes(ctx context.Context) ([]NodeInfo, error)
}
