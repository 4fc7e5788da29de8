package switchboard

import (
	"context"
	"errors"
	"fmt"
)

// Message types of presence.
const (
	// TypePresence asks who is subscribed to a topic: {"topic": "…"}.
	TypePresence = "PRESENCE"
	// TypePresenceResult answers it: {"topic": "…", "clients": [PresenceInfo…]}.
	TypePresenceResult = "PRESENCE_RESULT"
	// TypeJoin is pushed to a topic's subscribers when a client subscribes to it, for the
	// topics Config.PresenceEvents selects: {"topic", "client_id", "user_id"}.
	TypeJoin = "JOIN"
	// TypeLeave is pushed when a client unsubscribes or disconnects: same payload as JOIN.
	TypeLeave = "LEAVE"
)

// PresenceInfo is one subscriber of a topic.
type PresenceInfo struct {
	ClientID string `json:"client_id"`
	UserID   string `json:"user_id,omitempty"` // "" for an anonymous connection
	Node     string `json:"node,omitempty"`    // the node (Config.NodeID) the client is connected to
}

// Presence returns the subscribers of topic, each with its node. With a ClusterStore
// (Config.Cluster, or a cluster broker) these are the subscribers on every live node;
// otherwise this node's. An error means the store could not be read.
func (m *Manager) Presence(ctx context.Context, topic string) ([]PresenceInfo, error) {
	if err := m.validTopic(topic); err != nil {
		return nil, err
	}
	return m.clusterPresence(ctx, topic)
}

// presenceEvent publishes JOIN or LEAVE to topic when Config.PresenceEvents selects it.
func (m *Manager) presenceEvent(typ, topic string, c *Conn) {
	if m.cfg.PresenceEvents == nil || !m.cfg.PresenceEvents(topic) || m.closed.Load() {
		return
	}
	msg, err := NewMessage(typ, map[string]string{"topic": topic, "client_id": c.id, "user_id": c.UserID()})
	if err == nil {
		err = m.Publish(m.ctx, topic, msg)
	}
	if err != nil && !errors.Is(err, ErrShutdown) {
		m.cfg.Logger.Warn("switchboard: presence event not published", "type", typ, "topic", topic, "err", err)
	}
}

// presence answers PRESENCE {topic} for a connection allowed to subscribe to the topic.
func (envelopeProtocol) presence(ctx context.Context, c *Conn, msg *Message) {
	var req struct {
		Topic string `json:"topic"`
	}
	if err := msg.DecodePayload(&req); err != nil || req.Topic == "" {
		c.sendError(msg, CodeBadMessage, `PRESENCE payload must be {"topic": "…"}`)
		return
	}
	if err := c.m.validTopic(req.Topic); err != nil {
		c.sendError(msg, CodeBadMessage, err.Error())
		return
	}
	if err := c.m.cfg.TopicAuthorizer(ctx, c.identity.Load(), req.Topic); err != nil {
		c.sendError(msg, CodeForbidden, fmt.Sprintf("presence of %q: %v", req.Topic, err))
		return
	}
	clients, err := c.m.Presence(ctx, req.Topic)
	if err != nil {
		c.sendError(msg, CodeInternal, "presence unavailable")
		return
	}
	_ = c.Reply(msg, TypePresenceResult, map[string]any{"topic": req.Topic, "clients": clients})
}
