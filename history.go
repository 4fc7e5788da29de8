package switchboard

import (
	"context"
	"time"
)

// HistoryRule turns history on for the topics whose name matches Pattern.
type HistoryRule struct {
	// Pattern selects topics, in path.Match syntax: "chat:*", "orders", "user:*:updates".
	Pattern string
	// Size is how many of a topic's latest publications are kept.
	Size int
	// TTL is how long a publication is kept; a topic without publications for this long
	// loses its history, and its next publication starts a new epoch.
	TTL time.Duration
}

// StreamPosition is a place in a topic's history: the Seq of a publication (1 for the
// first) in the stream generation named by Epoch.
type StreamPosition struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// HistoryQuery asks a topic's history for the publications after Since.
type HistoryQuery struct {
	// Since is the last position the caller has; nil asks for the current position only.
	Since *StreamPosition
	// Limit caps the publications returned.
	Limit int
}

// HistoryResult answers a HistoryQuery.
type HistoryResult struct {
	// Publications are those after Since, oldest first, with Topic, Seq and Epoch set.
	Publications []*Message
	// Position is the stream's latest position (Seq 0 when the topic has no history yet).
	Position StreamPosition
	// Complete is true when Publications hold every publication after Since: same epoch,
	// nothing trimmed by Size or expired by TTL, and no more than Limit of them.
	Complete bool
}

// HistoryBroker is a Broker that keeps the history of topics. The Manager uses it for the
// topics that Config.History selects: a publication to such a topic gets the next position
// of the topic's stream and is stored with it, in the same step as it is published, so that
// every node sees a topic's publications in position order. The in-memory broker is a
// HistoryBroker; so is the Redis broker of adapters/redis.
type HistoryBroker interface {
	Broker
	// PublishHistory stores p, a TargetTopic publication, in its topic's history under the
	// next position and publishes it. It sets the position on the message it publishes (a
	// copy of p.Message) and returns it.
	PublishHistory(ctx context.Context, p *Publication, rule HistoryRule) (StreamPosition, error)
	// History reads a topic's history.
	History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error)
}
