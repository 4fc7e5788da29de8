package switchboard

import (
	"context"
	"math"
	"sync"
)

// Filling the gaps a cluster broker leaves in a topic's sequence on this node.
//
// A cluster broker carries publications between nodes at most once: Redis Pub/Sub drops
// what is published while a node's Pub/Sub connection is down. For a topic with history
// the publications are still in the history, so the node can get them back. For each topic
// with history that has local subscribers, the Manager keeps the position of the last
// publication it delivered (a topicLast, in the registry's topic shard). A publication that
// arrives after a hole — seq > last+1 in the same epoch, or seq > 1 in a new epoch — makes
// it read the missing ones from the history and deliver them first, in order, so that the
// local subscribers still see every seq. What the history no longer holds (trimmed,
// expired, more than Config.RecoverLimit, or a failed read) is counted in Stats.GapsLost
// and logged; the subscribers then see the jump, and a client that keeps positions
// recovers by subscribing again from its last one (docs/guarantees.md).
//
// The check runs in the broker's delivery goroutine, which a cluster broker keeps one per
// topic (a topic's publications arrive in seq order, one after the other), so the missing
// publications are delivered before the one that revealed them, and before any later one.
// Without a hole it costs a map lookup and a compare under an uncontended mutex. The
// in-memory broker gives positions and delivers under the same lock: it cannot leave holes,
// and is not checked.

// topicLast is the position of the last publication of a topic delivered on this node.
type topicLast struct {
	mu  sync.Mutex
	pos StreamPosition // Epoch "": none yet
}

// lastOf returns topic's topicLast, made on first use; nil when the topic has no local
// subscriber (then nothing is kept, and the registry drops the entry with the last one).
func (r *registry) lastOf(topic string) *topicLast {
	s := &r.topics[shardOf(topic)]
	s.mu.RLock()
	l := s.last[topic]
	s.mu.RUnlock()
	if l != nil {
		return l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[topic] == nil {
		return nil
	}
	if l = s.last[topic]; l == nil {
		l = &topicLast{}
		s.last[topic] = l
	}
	return l
}

// advance notes pos as delivered and returns the hole before it: the position after which
// publications are missing, and how many. Older positions of the same epoch (a publication
// delivered already) leave the state as it is and report no hole; connections drop what
// they have had.
func (l *topicLast) advance(pos StreamPosition) (since StreamPosition, missing uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.pos
	switch {
	case last.Epoch == "": // the first one since the topic got local subscribers
	case pos.Epoch == last.Epoch:
		if pos.Seq <= last.Seq {
			return since, 0
		}
		since, missing = last, pos.Seq-last.Seq-1
	default: // a new epoch (the stream expired and started again): it began at seq 1
		since, missing = StreamPosition{Epoch: pos.Epoch}, pos.Seq-1
	}
	l.pos = pos
	return since, missing
}

// seed sets the position when none is known yet: what a subscriber was told when its
// subscription read the history (everything up to pos is in its hands), so that a hole
// right after it is seen too.
func (l *topicLast) seed(pos StreamPosition) {
	l.mu.Lock()
	if l.pos.Epoch == "" {
		l.pos = pos
	}
	l.mu.Unlock()
}

// checksGaps reports whether deliveries of topics with history are checked for holes: the
// broker keeps history and may lose publications on their way to this node.
func (h *managerHistory) checksGaps() bool { return h != nil && !h.ordered }

// deliverInOrder delivers p, a publication with a position, after the publications this
// node missed before it, read from the history.
func (m *Manager) deliverInOrder(p *Publication) {
	l := m.reg.lastOf(p.Topic)
	if l == nil { // no local subscriber (any more): nobody to keep in order
		m.fanout(p)
		return
	}
	pos := StreamPosition{Seq: p.Message.Seq, Epoch: p.Message.Epoch}
	if since, missing := l.advance(pos); missing > 0 {
		m.fillGap(p.Topic, since, pos, missing)
	}
	m.fanout(p)
}

// seedLast tells the gap check what a new subscriber of topic was given: pos, read from
// the history after the subscriber was registered.
func (m *Manager) seedLast(topic string, pos StreamPosition) {
	if !m.hist.checksGaps() || pos.Epoch == "" {
		return
	}
	if l := m.reg.lastOf(topic); l != nil {
		l.seed(pos)
	}
}

// fillGap reads the missing publications of topic, after since and before next, from the
// history, and delivers them in order. What it cannot get is counted and logged.
func (m *Manager) fillGap(topic string, since, next StreamPosition, missing uint64) {
	var filled uint64
	if limit := m.hist.limit; limit < 0 || missing <= uint64(limit) {
		filled = m.fillFromHistory(topic, since, next, missing)
	}
	m.stats.gapsFilled.Add(filled)
	if lost := missing - filled; lost > 0 {
		m.stats.gapsLost.Add(lost)
		m.cfg.Logger.Warn("switchboard: publications this node missed are not in the history; "+
			"its subscribers see a jump in seq", "topic", topic, "epoch", next.Epoch,
			"after", since.Seq, "before", next.Seq, "missed", missing, "lost", lost)
		return
	}
	m.cfg.Logger.Debug("switchboard: publications this node missed were delivered from the history",
		"topic", topic, "epoch", next.Epoch, "after", since.Seq, "before", next.Seq)
}

// fillFromHistory delivers what the history holds between since and next, oldest first,
// and returns how many publications that was.
func (m *Manager) fillFromHistory(topic string, since, next StreamPosition, missing uint64) uint64 {
	rule, _ := m.hist.rule(topic)
	ctx, cancel := context.WithTimeout(m.ctx, clusterTimeout)
	defer cancel()
	r, err := m.hist.broker.History(ctx, topic, HistoryQuery{
		Since: &since,
		Limit: int(min(missing, math.MaxInt32)),
		TTL:   rule.TTL,
	})
	if err != nil {
		m.cfg.Logger.Warn("switchboard: history read to fill a gap failed", "topic", topic, "err", err)
		return 0
	}
	var filled uint64
	after := since.Seq
	for _, pub := range r.Publications {
		if pub.Epoch != next.Epoch || pub.Seq <= after || pub.Seq >= next.Seq {
			continue // not in the hole: never deliver out of order
		}
		after = pub.Seq
		m.fanout(&Publication{Kind: TargetTopic, Topic: topic, Message: pub})
		filled++
	}
	return filled
}
