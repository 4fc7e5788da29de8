package switchboard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Broadcast sends msg to every connection (with RequireAuth, every authenticated one).
func (m *Manager) Broadcast(ctx context.Context, msg *Message) error {
	return m.publish(ctx, &Publication{Kind: TargetAll, Message: prepare(msg, "")})
}

// BroadcastToUsers sends msg to every connection of each of the given users: a user with
// several tabs open gets it in each. When msg's type is one of Config.Inbox.Types, a user
// with no live connection gets it at their next login (see SendToUser).
func (m *Manager) BroadcastToUsers(ctx context.Context, msg *Message, userIDs ...string) error {
	return m.sendToUsers(ctx, userIDs, msg, 0)
}

// Publish sends msg to the subscribers of topic. The message is sent with its "topic" field
// set; msg itself is not modified. A topic that Config.History selects keeps the
// publication in its history, and the message is sent with its position ("seq", "epoch");
// PublishWithPosition returns that position.
func (m *Manager) Publish(ctx context.Context, topic string, msg *Message) error {
	_, err := m.PublishWithPosition(ctx, topic, msg)
	return err
}

// SendToClient sends msg to the connection with the given client ID. With the in-memory
// broker it returns ErrClientNotFound when no such connection is live. With a cluster
// broker the client may be on any node, so the publication goes to every node and the one
// holding the client delivers it; a client that is nowhere is not reported (nil error).
func (m *Manager) SendToClient(ctx context.Context, clientID string, msg *Message) error {
	if m.closed.Load() {
		return ErrShutdown
	}
	if _, local := m.broker.(*MemoryBroker); local && m.reg.conn(clientID) == nil {
		return fmt.Errorf("%w: %q", ErrClientNotFound, clientID)
	}
	return m.publish(ctx, &Publication{Kind: TargetClient, Client: clientID, Message: prepare(msg, "")})
}

func (m *Manager) publish(ctx context.Context, p *Publication) error {
	if m.closed.Load() {
		return ErrShutdown
	}
	if p.Message == nil || p.Message.Type == "" {
		return fmt.Errorf("%w: message without a type", ErrBadMessage)
	}
	return m.broker.Publish(ctx, p)
}

// prepare returns msg with an ID, a timestamp and the topic set, copying it only when one of
// them has to change, so callers may reuse a message across publishes.
func prepare(msg *Message, topic string) *Message {
	if msg == nil {
		return nil
	}
	if msg.ID != "" && msg.Timestamp != 0 && msg.Topic == topic {
		return msg
	}
	cp := *msg
	if cp.ID == "" {
		cp.ID = uuid.NewString()
	}
	if cp.Timestamp == 0 {
		cp.Timestamp = nowSeconds()
	}
	cp.Topic = topic
	return &cp
}

func nowSeconds() float64 {
	return float64(time.Now().UnixMilli()) / 1000
}

// encodeCache encodes one message at most once per codec, however many recipients use it.
type encodeCache struct {
	msg   *Message
	n     int
	items [4]encoded
	more  []encoded
}

type encoded struct {
	codec Codec
	frame []byte
	err   error
}

func (e *encodeCache) frame(c Codec) ([]byte, error) {
	for i := 0; i < e.n; i++ {
		if e.items[i].codec == c {
			return e.items[i].frame, e.items[i].err
		}
	}
	for i := range e.more {
		if e.more[i].codec == c {
			return e.more[i].frame, e.more[i].err
		}
	}
	f, err := c.Encode(make([]byte, 0, encodedSizeHint(e.msg)), e.msg)
	if e.n < len(e.items) {
		e.items[e.n] = encoded{c, f, err}
		e.n++
	} else {
		e.more = append(e.more, encoded{c, f, err})
	}
	return f, err
}

// encodedSizeHint guesses a frame's size so that encoding allocates once.
func encodedSizeHint(m *Message) int {
	return len(m.Payload) + len(m.Type) + len(m.Topic) + len(m.CorrelationID) + len(m.Epoch) + 128
}

var connListPool = sync.Pool{New: func() any { return new([]*Conn) }}

// deliver fans a publication out to this node's local connections. Brokers call it. A
// publication with a position from a cluster broker first goes through the gap check,
// which delivers what this node missed before it (history_gap.go).
func (m *Manager) deliver(p *Publication) {
	if p == nil || p.Message == nil {
		return
	}
	if p.Kind == TargetTopic && p.Message.Seq != 0 && m.hist.checksGaps() {
		m.deliverInOrder(p)
		return
	}
	m.fanout(p)
}

// fanout delivers p to this node's local connections.
func (m *Manager) fanout(p *Publication) {
	start := time.Now()
	ec := encodeCache{msg: p.Message}
	sent, bytes := 0, 0
	send := func(c *Conn) {
		if m.cfg.RequireAuth && p.Kind != TargetClient && c.identity.Load() == nil { // not state: a token refresh passes through AUTHENTICATING
			return
		}
		if n := c.enqueueMessage(&ec); n > 0 {
			sent++
			bytes += n
		}
	}
	switch p.Kind {
	case TargetAll:
		m.reg.forEachConn(send)
	case TargetTopic:
		// The subscribers are copied out of the shard's lock, so that a large fan-out does
		// not hold up subscribes — nor, behind a waiting subscribe, other topics' publishes.
		list := connListPool.Get().(*[]*Conn)
		s := &m.reg.topics[shardOf(p.Topic)]
		s.mu.RLock()
		for c := range s.m[p.Topic] {
			*list = append(*list, c)
		}
		s.mu.RUnlock()
		for i, c := range *list {
			send(c)
			(*list)[i] = nil
		}
		*list = (*list)[:0]
		connListPool.Put(list)
	case TargetUsers:
		for _, u := range p.Users {
			s := &m.reg.users[shardOf(u)]
			s.mu.RLock()
			for _, c := range s.m[u] {
				if !c.holdForInbox(&ec) {
					send(c)
				}
			}
			s.mu.RUnlock()
		}
	case TargetClient:
		if c := m.reg.conn(p.Client); c != nil {
			send(c)
		}
	}
	m.onMessagesOut(p.Message.Type, sent, bytes)
	m.onFanout(p.Kind, sent, time.Since(start))
}
