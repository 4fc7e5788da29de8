package switchboard

import "time"

// Observer receives a manager's events, for metrics (see the metrics package for one on
// Prometheus). Its methods are called on hot paths, from many goroutines at once: they must
// be safe for concurrent use, fast, and must never block.
type Observer interface {
	// HandshakeRejected: an upgrade was refused. reason is "rate_limited",
	// "too_many_connections", "shutting_down" or "bad_handshake" (including foreign origins).
	HandshakeRejected(reason string)
	// ConnectionOpened: a connection was upgraded on the endpoint with the given codec name.
	ConnectionOpened(codec string)
	// ConnectionClosed: a connection ended with the close code (1006 for a lost connection).
	ConnectionClosed(code int)
	// MessageIn: a frame of n bytes arrived; typ is its message type once decoded, or
	// "invalid" when it could not be.
	MessageIn(typ string, n int)
	// MessagesOut: frames of a message type were queued to connections: count frames,
	// bytes in total.
	MessagesOut(typ string, count, bytes int)
	// Fanout: a publication was fanned out to recipients local connections in d.
	Fanout(kind TargetKind, recipients int, d time.Duration)
	// SlowConsumer: a connection was closed with 1013; reason is "queue_overflow" or
	// "write_timeout".
	SlowConsumer(reason string)
	// RateLimited: an inbound message was dropped by the message rate limit.
	RateLimited()
	// AuthFailure: an authentication failed, with the reason sent to the client
	// ("invalid", "expired", "malformed", "no_token", "too_many_connections", …).
	AuthFailure(reason string)
}

func (m *Manager) onRejected(reason string) {
	m.stats.rejected.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.HandshakeRejected(reason)
	}
}

func (m *Manager) onOpened(c *Conn) {
	m.stats.connections.Add(1)
	m.stats.accepted.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.ConnectionOpened(c.ep.codec.Name())
	}
}

func (m *Manager) onClosed(code int) {
	m.stats.connections.Add(-1)
	m.stats.disconnects.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.ConnectionClosed(code)
	}
}

func (m *Manager) onMessageIn(typ string, n int) {
	m.stats.messagesIn.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.MessageIn(typ, n)
	}
}

func (m *Manager) onMessagesOut(typ string, count, bytes int) {
	m.stats.messagesOut.Add(uint64(count))
	if o := m.cfg.Observer; o != nil && count > 0 {
		o.MessagesOut(typ, count, bytes)
	}
}

func (m *Manager) onFanout(kind TargetKind, recipients int, d time.Duration) {
	m.stats.deliveries.Add(1)
	m.stats.fanoutNanos.Add(uint64(d))
	if o := m.cfg.Observer; o != nil {
		o.Fanout(kind, recipients, d)
	}
}

func (m *Manager) onSlowConsumer(reason string) {
	m.stats.slowConsumers.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.SlowConsumer(reason)
	}
}

func (m *Manager) onRateLimited() {
	m.stats.rateLimited.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.RateLimited()
	}
}

func (m *Manager) onAuthFailure(err error) {
	m.stats.authFailures.Add(1)
	if o := m.cfg.Observer; o != nil {
		o.AuthFailure(authReason(err))
	}
}
