package nats

// The broker's switchboard.ClusterStore side, part two: questions to every node. Presence
// and per-user connection counts are not stored anywhere: a node asks, every other live
// node answers from its own registry (LocalNode), and the asker gathers the answers until
// every node of its table has answered or the gather window (Options.GatherTimeout, or a
// shorter context deadline) ends. A node that is dead but not yet dropped from the table
// does not answer, so it is missing from the result at once; the asker waits the window
// for it once, then no longer until it hears a heartbeat from it again (cluster.awaited).

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard"
)

// Question subjects, after the prefix: the last token is the topic or the user, encoded
// like topics (subjectToken).
const (
	presenceToken  = ".presence."
	userConnsToken = ".userconns."
)

// maxPart bounds one message of a presence answer; it is lowered to half the server's
// max_payload (1 MiB by default) when that is smaller.
const maxPart = 256 << 10

// question is the body of a presence or user-connections question.
type question struct {
	From  string `json:"from"`  // the asking node, which answers for itself without NATS
	About string `json:"about"` // the topic or the user, whole (the subject may carry a hash)
}

// maxNameInSubject is the longest topic or user name a question's subject carries as is;
// a longer one is hashed, because the server closes a connection whose PUB line exceeds
// its max_control_line (4 KiB by default).
const maxNameInSubject = 192

// questionToken is the last token of a question's subject: the name in base64url, or for
// a long name "~" and the base64url of its SHA-256.
func questionToken(name string) string {
	if len(name) <= maxNameInSubject {
		return subjectToken(name)
	}
	sum := sha256.Sum256([]byte(name))
	return "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// presencePart is one message of a node's answer to a presence question: an answer is
// split into Parts messages so that none exceeds maxPart, whatever the number of
// subscribers.
type presencePart struct {
	Node    string                     `json:"node"`
	Part    int                        `json:"part"`
	Parts   int                        `json:"parts"`
	Clients []switchboard.PresenceInfo `json:"clients"`
}

// userCount is a node's answer to a user-connections question.
type userCount struct {
	Node string `json:"node"`
	Live int    `json:"live"` // the user's connections in the node's registry
	Held int    `json:"held"` // acquired on the node and not released: admitted, or being admitted
}

// PresenceSubject is the subject on which a node asks the others for topic's subscribers.
func (b *Broker) PresenceSubject(topic string) string {
	return b.prefix + presenceToken + questionToken(topic)
}

// UserConnsSubject is the subject on which a node asks the others for user's connections.
func (b *Broker) UserConnsSubject(user string) string {
	return b.prefix + userConnsToken + questionToken(user)
}

// AddPresence implements switchboard.ClusterStore. It stores nothing: presence is asked of
// the live nodes' registries when needed, so there is nothing to record, and nothing left
// behind by a node that dies.
func (b *Broker) AddPresence(context.Context, string, switchboard.PresenceInfo) error { return nil }

// RemovePresence implements switchboard.ClusterStore; like AddPresence, it has nothing to do.
func (b *Broker) RemovePresence(context.Context, string, string) error { return nil }

// Presence implements switchboard.ClusterStore: this node's subscribers of topic and those
// of every other node that answers within the gather window. A node that does not answer
// in time (it died, or is cut off from NATS) is left out, without an error.
func (b *Broker) Presence(ctx context.Context, topic string) ([]switchboard.PresenceInfo, error) {
	local, id, err := b.joined()
	if err != nil {
		return nil, err
	}
	out := withNode(local.Presence(topic), id)
	parts := make(map[string]map[int]bool) // node → parts received
	err = b.gather(ctx, b.PresenceSubject(topic), topic, func(m *nats.Msg) (string, bool) {
		var p presencePart
		if err := json.Unmarshal(m.Data, &p); err != nil || p.Node == "" || p.Parts < 1 || p.Part < 0 || p.Part >= p.Parts {
			b.log.Warn("switchboard/nats: dropping malformed presence answer", "err", err)
			return "", false
		}
		got := parts[p.Node]
		if got == nil {
			got = make(map[int]bool, p.Parts)
			parts[p.Node] = got
		}
		if !got[p.Part] {
			got[p.Part] = true
			out = append(out, withNode(p.Clients, p.Node)...)
		}
		return p.Node, len(got) == p.Parts
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withNode sets Node on the entries that lack it.
func withNode(list []switchboard.PresenceInfo, node string) []switchboard.PresenceInfo {
	for i := range list {
		if list[i].Node == "" {
			list[i].Node = node
		}
	}
	return list
}

// UserConns implements switchboard.ClusterStore: user's connections in the registries of
// this node and of the nodes that answer within the gather window.
func (b *Broker) UserConns(ctx context.Context, user string) (int, error) {
	return b.countUser(ctx, user, false)
}

// AcquireUserConn implements switchboard.ClusterStore. The node first records clientID
// among the user's connections held here, then asks every node for its count of the
// user's connections — the larger of those in its registry and those it holds — and keeps
// the connection when the sum, this one included, is at most max.
//
// Because each node records before it asks, and answers with what it holds, of two
// connections of one user admitted at the same time on two nodes at least one sees the
// other: the cap is not exceeded, though both may be refused when only one place was left.
// The cap can be exceeded only when a live node does not answer within the gather window
// (its connections are then not counted).
func (b *Broker) AcquireUserConn(ctx context.Context, user, clientID string, max int) (bool, error) {
	c := &b.cl
	c.mu.Lock()
	if c.local == nil {
		c.mu.Unlock()
		return false, ErrNotJoined
	}
	held := c.held[user]
	if held == nil {
		held = make(map[string]struct{})
		c.held[user] = held
	}
	if _, ok := held[clientID]; ok {
		c.mu.Unlock()
		return true, nil
	}
	held[clientID] = struct{}{}
	c.mu.Unlock()
	if max < 0 {
		return true, nil
	}
	n, err := b.countUser(ctx, user, true)
	if err != nil || n > max {
		_ = b.ReleaseUserConn(ctx, user, clientID)
		return false, err
	}
	return true, nil
}

// ReleaseUserConn implements switchboard.ClusterStore: the node stops holding clientID.
func (b *Broker) ReleaseUserConn(_ context.Context, user, clientID string) error {
	c := &b.cl
	c.mu.Lock()
	defer c.mu.Unlock()
	if held := c.held[user]; held != nil {
		delete(held, clientID)
		if len(held) == 0 {
			delete(c.held, user)
		}
	}
	return nil
}

// countUser sums user's connections over the nodes: those in each registry or, withHeld,
// the larger of those and the ones each node holds.
func (b *Broker) countUser(ctx context.Context, user string, withHeld bool) (int, error) {
	local, _, err := b.joined()
	if err != nil {
		return 0, err
	}
	count := func(u userCount) int {
		if withHeld && u.Held > u.Live {
			return u.Held
		}
		return u.Live
	}
	n := count(b.localCount(local, user))
	err = b.gather(ctx, b.UserConnsSubject(user), user, func(m *nats.Msg) (string, bool) {
		var u userCount
		if err := json.Unmarshal(m.Data, &u); err != nil || u.Node == "" || u.Live < 0 || u.Held < 0 {
			b.log.Warn("switchboard/nats: dropping malformed connection count", "err", err)
			return "", false
		}
		n += count(u)
		return u.Node, true
	})
	return n, err
}

// localCount is this node's answer about user.
func (b *Broker) localCount(local switchboard.LocalNode, user string) userCount {
	live := local.UserConns(user) // outside c.mu: it reads the Manager's registry
	c := &b.cl
	c.mu.Lock()
	defer c.mu.Unlock()
	return userCount{Node: c.id, Live: live, Held: len(c.held[user])}
}

// joined returns the joined node and its ID, or ErrNotJoined.
func (b *Broker) joined() (switchboard.LocalNode, string, error) {
	c := &b.cl
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local == nil {
		return nil, "", ErrNotJoined
	}
	return c.local, c.id, nil
}

// gather asks the question about a topic or user on subject and hands every answer to
// take, which returns the answering node and whether its answer is complete, until every
// other node live when it started has answered in full, or the window ends. The window ending is not an error —
// the nodes that did not answer are left out — but a cancelled ctx is.
func (b *Broker) gather(ctx context.Context, subject, about string, take func(*nats.Msg) (string, bool)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &b.cl
	c.mu.Lock()
	if c.local == nil {
		c.mu.Unlock()
		return ErrNotJoined
	}
	want, from := c.awaited(time.Now()), c.id
	c.mu.Unlock()
	if len(want) == 0 {
		return nil
	}
	if err := b.connected(); err != nil {
		return err
	}

	wctx, cancel := context.WithTimeout(ctx, c.window)
	defer cancel()
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("switchboard/nats: subscribe %s: %w", inbox, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(question{From: from, About: about})
	if err := b.nc.PublishRequest(subject, inbox, body); err != nil {
		return fmt.Errorf("switchboard/nats: ask %s: %w", subject, err)
	}
	for len(want) > 0 {
		m, err := sub.NextMsgWithContext(wctx)
		switch {
		case err == nil:
		case errors.Is(ctx.Err(), context.Canceled):
			return ctx.Err()
		case wctx.Err() != nil:
			b.log.Debug("switchboard/nats: nodes did not answer in time", "subject", subject, "missing", len(want))
			c.missedQuestion(want)
			return nil
		default: // the connection was closed meanwhile
			return fmt.Errorf("switchboard/nats: gather answers on %s: %w", subject, err)
		}
		if node, complete := take(m); complete {
			delete(want, node) // a node not (yet) in the table is not waited for, but its answer counts
		}
	}
	return nil
}

// connected returns nil when the connection to NATS is up, else why not.
func (b *Broker) connected() error {
	switch st := b.nc.Status(); st {
	case nats.CONNECTED:
		return nil
	case nats.CLOSED, nats.DRAINING_SUBS, nats.DRAINING_PUBS:
		return ErrClosed
	default:
		return fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
}

// onPresenceQuestion answers a presence question with this node's subscribers.
func (b *Broker) onPresenceQuestion(m *nats.Msg) {
	local, id, topic, ok := b.question(m, presenceToken)
	if !ok {
		return
	}
	limit := maxPart
	if mp := int(b.nc.MaxPayload()); mp > 0 && mp/2 < limit {
		limit = mp / 2
	}
	for _, part := range presenceParts(id, withNode(local.Presence(topic), id), limit) {
		if err := m.Respond(part); err != nil {
			b.log.Warn("switchboard/nats: presence answer not sent", "err", err)
			return
		}
	}
}

// onUserConnsQuestion answers a user-connections question with this node's counts.
func (b *Broker) onUserConnsQuestion(m *nats.Msg) {
	local, _, user, ok := b.question(m, userConnsToken)
	if !ok {
		return
	}
	data, _ := json.Marshal(b.localCount(local, user))
	if err := m.Respond(data); err != nil {
		b.log.Warn("switchboard/nats: connection count not sent", "err", err)
	}
}

// question decodes a question on the subject kind, and returns the node that must answer
// and what it is asked about; ok is false when this node must not answer: it is the
// asker, it has left, or the question is malformed (logged).
func (b *Broker) question(m *nats.Msg, kind string) (local switchboard.LocalNode, id, about string, ok bool) {
	var q question
	if err := json.Unmarshal(m.Data, &q); err != nil || m.Reply == "" || m.Subject != b.prefix+kind+questionToken(q.About) {
		b.log.Warn("switchboard/nats: dropping malformed question", "subject", m.Subject, "err", err)
		return nil, "", "", false
	}
	local, id, err := b.joined()
	if err != nil || q.From == id {
		return nil, "", "", false
	}
	return local, id, q.About, true
}

// presenceParts encodes list as presencePart messages of at most about limit bytes each
// (one entry per message at least), always at least one message.
func presenceParts(node string, list []switchboard.PresenceInfo, limit int) [][]byte {
	var groups [][]json.RawMessage
	var cur []json.RawMessage
	size := 0
	for _, p := range list {
		e, err := json.Marshal(p)
		if err != nil {
			continue // PresenceInfo is three strings: cannot happen
		}
		if len(cur) > 0 && size+len(e)+1 > limit {
			groups, cur, size = append(groups, cur), nil, 0
		}
		cur = append(cur, e)
		size += len(e) + 1
	}
	if cur == nil {
		cur = []json.RawMessage{} // "clients": [], not null
	}
	groups = append(groups, cur)

	out := make([][]byte, len(groups))
	for i, g := range groups {
		// A presencePart whose entries are already encoded.
		out[i], _ = json.Marshal(struct {
			Node    string            `json:"node"`
			Part    int               `json:"part"`
			Parts   int               `json:"parts"`
			Clients []json.RawMessage `json:"clients"`
		}{node, i, len(groups), g})
	}
	return out
}
