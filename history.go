package switchboard

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"
)

// ErrNoHistory is returned by Manager.History for a topic that no Config.History rule
// selects, or when the Broker keeps no history.
var ErrNoHistory = errors.New("switchboard: topic has no history")

// HistoryRule turns history on for the topics whose name matches Pattern.
type HistoryRule struct {
	// Pattern selects topics, in path.Match syntax: "chat:*", "orders", "user:*:updates".
	// A "*" does not match a "/". A malformed pattern is logged by New and ignored.
	Pattern string
	// Size is how many of a topic's latest publications are kept. Default (zero or
	// negative) 100.
	Size int
	// TTL is how long a publication is kept; a topic without publications for this long
	// loses its history, and its next publication starts a new epoch. Default (zero or
	// negative) 10 minutes.
	TTL time.Duration
}

// Defaults of a HistoryRule and of Config.RecoverLimit.
const (
	defaultHistorySize  = 100
	defaultHistoryTTL   = 10 * time.Minute
	defaultRecoverLimit = 1000
)

// withDefaults returns r with its zero (or negative) Size and TTL set to their defaults.
func (r HistoryRule) withDefaults() HistoryRule {
	if r.Size <= 0 {
		r.Size = defaultHistorySize
	}
	if r.TTL <= 0 {
		r.TTL = defaultHistoryTTL
	}
	return r
}

// historyDefaults applies the defaults of Config.History and Config.RecoverLimit, on a
// copy of the rules (the caller's slice is not modified).
func historyDefaults(rules []HistoryRule, recoverLimit int) ([]HistoryRule, int) {
	if recoverLimit == 0 {
		recoverLimit = defaultRecoverLimit
	}
	if rules == nil {
		return nil, recoverLimit
	}
	out := make([]HistoryRule, len(rules))
	for i, r := range rules {
		out[i] = r.withDefaults()
	}
	return out, recoverLimit
}

// validateHistoryRules returns the rules whose pattern is well formed, and an error naming
// the others.
func validateHistoryRules(rules []HistoryRule) ([]HistoryRule, error) {
	var good []HistoryRule
	var errs []error
	for _, r := range rules {
		if _, err := path.Match(r.Pattern, ""); err != nil || r.Pattern == "" {
			errs = append(errs, fmt.Errorf("history rule %q: malformed pattern", r.Pattern))
			continue
		}
		good = append(good, r)
	}
	return good, errors.Join(errs...)
}

// StreamPosition is a place in a topic's history: the Seq of a publication (1 for the
// first) in the stream generation named by Epoch. Seq 0 is the place before the first
// publication of the epoch.
type StreamPosition struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// HistoryQuery asks a topic's history for the publications after Since.
type HistoryQuery struct {
	// Since is the last position the caller has; nil asks for the current position only.
	// To read the whole history kept, pass Seq 0 and the current epoch.
	Since *StreamPosition
	// Limit caps the publications returned; 0 returns none (only Position and Complete),
	// a negative Limit returns all there are.
	Limit int
	// TTL is the topic's HistoryRule.TTL. A read of a topic that has no stream yet (or whose
	// stream has expired) starts one, so that a client subscribing before the first
	// publication gets an epoch it can recover from later; TTL is how long such a stream
	// lives without publications. The Manager sets it; zero means the implementation's
	// default.
	TTL time.Duration
}

// HistoryResult answers a HistoryQuery.
type HistoryResult struct {
	// Publications are those after Since, oldest first, with Topic, Seq and Epoch set: at
	// most Limit of them, and none when Since is of another epoch. They are copies the
	// caller may keep (their Payload is shared and must not be modified).
	Publications []*Message
	// Position is the stream's latest position (Seq 0 when the topic has no publication
	// in its current epoch).
	Position StreamPosition
	// Complete is true when Publications hold every publication after Since: same epoch,
	// nothing trimmed by Size or expired by TTL, and no more than Limit of them. It is true
	// when Since is nil.
	Complete bool
}

// HistoryBroker is a Broker that keeps the history of topics. The Manager uses it for the
// topics that Config.History selects: a publication to such a topic gets the next position
// of the topic's stream and is stored with it, in the same step as it is published, so that
// every node sees a topic's publications in position order. The in-memory broker is a
// HistoryBroker; so is the Redis broker of adapters/redis.
//
// A stream starts with a random epoch on its first publication or read. Its Seq grows by one
// per publication. It keeps at most rule.Size publications, each for rule.TTL; a stream
// without publications for rule.TTL is dropped, and the topic's next publication or read
// starts a new epoch (so that positions of the old one are never taken for positions of
// the new one).
//
// A cluster broker hands a topic's publications to its node one after the other, in seq
// order, and may lose some on the way (Redis Pub/Sub is at most once). The Manager then
// fills the hole from History before it delivers the next one (see Stats.GapsFilled), from
// within the deliver callback: a broker must not hold, while it calls deliver, a lock that
// History takes. The in-memory broker, which delivers under its history's lock, cannot
// lose publications and is not checked.
type HistoryBroker interface {
	Broker
	// PublishHistory stores p, a TargetTopic publication, in its topic's history under the
	// next position and publishes it. It sets the position on the message it publishes (a
	// copy of p.Message) and returns it. The Manager passes rules with their defaults
	// applied (Size and TTL positive).
	PublishHistory(ctx context.Context, p *Publication, rule HistoryRule) (StreamPosition, error)
	// History reads a topic's history.
	History(ctx context.Context, topic string, q HistoryQuery) (HistoryResult, error)
}
