package switchboard

import (
	"sync/atomic"
	"time"
)

// counters are the manager's running totals, updated with atomics.
type counters struct {
	connections   atomic.Int64
	accepted      atomic.Uint64
	rejected      atomic.Uint64
	disconnects   atomic.Uint64
	messagesIn    atomic.Uint64
	messagesOut   atomic.Uint64
	framesWritten atomic.Uint64
	deliveries    atomic.Uint64
	fanoutNanos   atomic.Uint64
	slowConsumers atomic.Uint64
	rateLimited   atomic.Uint64
	authFailures  atomic.Uint64
	errors        atomic.Uint64
	gapsFilled    atomic.Uint64
	gapsLost      atomic.Uint64
}

// Stats is a snapshot of a manager's counters since it was created.
type Stats struct {
	Connections   int           // live connections now
	Topics        int           // topics with at least one local subscriber
	Subscriptions int           // (connection, topic) pairs
	Accepted      uint64        // upgrades accepted
	Rejected      uint64        // upgrades refused (rate limit, origin, user cap, bad handshake)
	Disconnects   uint64        // connections ended, for any reason
	MessagesIn    uint64        // messages read from clients
	MessagesOut   uint64        // messages queued to clients by deliveries
	FramesWritten uint64        // frames written to sockets
	Deliveries    uint64        // publications fanned out on this node
	FanoutTime    time.Duration // total time spent fanning out
	SlowConsumers uint64        // connections closed with 1013 because their queue overflowed
	RateLimited   uint64        // inbound messages dropped by the message rate limit
	AuthFailures  uint64        // failed authentications
	Errors        uint64        // errors reported to OnError
	// GapsFilled counts publications of topics with history that the cluster broker did
	// not deliver to this node, and that the node delivered from the history instead,
	// before the next one (see docs/guarantees.md).
	GapsFilled uint64
	// GapsLost counts publications this node missed that the history no longer held: its
	// subscribers saw a jump in seq.
	GapsLost uint64
}

// Stats returns a snapshot of the manager's counters.
func (m *Manager) Stats() Stats {
	topics, subs := m.reg.topicCount()
	return Stats{
		Connections:   int(m.stats.connections.Load()),
		Topics:        topics,
		Subscriptions: subs,
		Accepted:      m.stats.accepted.Load(),
		Rejected:      m.stats.rejected.Load(),
		Disconnects:   m.stats.disconnects.Load(),
		MessagesIn:    m.stats.messagesIn.Load(),
		MessagesOut:   m.stats.messagesOut.Load(),
		FramesWritten: m.stats.framesWritten.Load(),
		Deliveries:    m.stats.deliveries.Load(),
		FanoutTime:    time.Duration(m.stats.fanoutNanos.Load()),
		SlowConsumers: m.stats.slowConsumers.Load(),
		RateLimited:   m.stats.rateLimited.Load(),
		AuthFailures:  m.stats.authFailures.Load(),
		Errors:        m.stats.errors.Load(),
		GapsFilled:    m.stats.gapsFilled.Load(),
		GapsLost:      m.stats.gapsLost.Load(),
	}
}

// StateCounts returns how many of the manager's connections are in each state. It walks
// every connection: meant for metrics scrapes, not hot paths.
func (m *Manager) StateCounts() map[State]int {
	out := make(map[State]int, 4)
	m.reg.forEachConn(func(c *Conn) { out[c.state.load()]++ })
	return out
}
