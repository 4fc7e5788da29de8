package switchboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// InboxStore keeps messages for users who have no live connection, until they next
// authenticate (see Config.Inbox). The Manager calls Put for each kept message, Take when
// a user's first connection on a node authenticates, and Remove when a message it has just
// put turns out to have a live recipient after all. Implementations must be safe for
// concurrent use, and Take and Remove must be atomic with respect to each other: a message
// is returned by one Take or reported removed by one Remove, never both, never twice.
//
// MemoryInbox is the store of a single node; adapters/redis has one shared by the nodes of
// a cluster.
type InboxStore interface {
	// Put appends msg to user's inbox, keeping at most size messages (the oldest are
	// dropped first) and each for ttl. size and ttl are positive.
	Put(ctx context.Context, user string, msg *Message, size int, ttl time.Duration) error
	// Take removes and returns the messages of user's inbox that have not expired, oldest
	// first. An empty inbox gives no messages and no error.
	Take(ctx context.Context, user string) ([]*Message, error)
	// Remove removes the message whose ID is id from user's inbox and reports whether it
	// was there. When several kept messages share the ID, one of them is removed.
	Remove(ctx context.Context, user, id string) (bool, error)
}

// SendOption changes how SendToUser and SendToUsers deliver a message.
type SendOption uint8

const (
	// KeepIfOffline keeps the message in the inbox of each recipient who has no live
	// connection, for delivery when they next authenticate, whatever its type (see
	// Config.Inbox). It does nothing when the inbox is off (Config.Inbox.Size < 0).
	KeepIfOffline SendOption = 1 << iota
)

// SendToUser sends msg to every connection of the user userID, like BroadcastToUsers, with
// the given options. With KeepIfOffline, or when msg's type is one of Config.Inbox.Types,
// a user who has no live connection gets the message when they next authenticate.
//
// A kept message is either delivered live or kept, never both: see docs/inbox.md for the
// guarantees. When the InboxStore fails to keep the message for a user, the message is
// still published to that user's live connections, if any, and the error returned wraps
// ErrNotKept; other errors of the store are logged, as the message then stays kept.
func (m *Manager) SendToUser(ctx context.Context, userID string, msg *Message, opts ...SendOption) error {
	return m.SendToUsers(ctx, []string{userID}, msg, opts...)
}

// SendToUsers sends msg to every connection of each of userIDs, like BroadcastToUsers, with
// the given options; see SendToUser.
func (m *Manager) SendToUsers(ctx context.Context, userIDs []string, msg *Message, opts ...SendOption) error {
	var o SendOption
	for _, x := range opts {
		o |= x
	}
	return m.sendToUsers(ctx, userIDs, msg, o)
}

// inbox is the manager's view of Config.Inbox.
type inbox struct {
	store   InboxStore
	types   map[string]bool
	size    int
	ttl     time.Duration
	perNode bool      // a MemoryInbox by default, in a cluster: see checkInboxStore
	warn    sync.Once // about perNode, at the first message kept
}

// newInbox returns the inbox for cfg, or nil when it is off. The store defaults to the
// broker when it keeps inboxes itself (a cluster's shared store), otherwise to memory.
func newInbox(cfg InboxConfig, broker Broker) *inbox {
	if cfg.Size < 0 || cfg.TTL < 0 {
		return nil
	}
	in := &inbox{store: cfg.Store, size: cfg.Size, ttl: cfg.TTL, types: map[string]bool{}}
	for _, t := range cfg.Types {
		in.types[t] = true
	}
	if in.store == nil {
		if s, ok := broker.(InboxStore); ok {
			in.store = s
		} else {
			in.store = NewMemoryInbox()
			in.perNode = true
		}
	}
	return in
}

// checkInboxStore warns when the nodes of a cluster each keep their own inboxes in memory:
// a message kept on one node is then not delivered when its user logs in on another. New
// calls it once the cluster store is settled.
func (m *Manager) checkInboxStore() {
	in := m.inbox
	if in == nil {
		return
	}
	in.perNode = in.perNode && m.cluster != nil // memory is right for a single node
	if in.perNode && len(in.types) > 0 {
		in.warn.Do(m.warnInboxPerNode)
	}
}

func (m *Manager) warnInboxPerNode() {
	m.cfg.Logger.Warn("switchboard: in a cluster, Config.Inbox.Store should be shared by the nodes " +
		"(the broker is not an InboxStore): each node keeps its own inboxes in memory, and a user " +
		"who logs in on another node does not get what was kept")
}

// keeps reports whether a message of type typ sent with opts is kept for offline users.
func (in *inbox) keeps(typ string, opts SendOption) bool {
	return in != nil && (opts&KeepIfOffline != 0 || in.types[typ])
}

// sendToUsers publishes msg to users, first keeping it for those who are offline when the
// inbox applies.
func (m *Manager) sendToUsers(ctx context.Context, users []string, msg *Message, opts SendOption) error {
	if len(users) == 0 {
		return nil
	}
	if m.closed.Load() {
		return ErrShutdown
	}
	msg = prepare(msg, "")
	if msg == nil || msg.Type == "" || !m.inbox.keeps(msg.Type, opts) {
		return m.publish(ctx, &Publication{Kind: TargetUsers, Users: users, Message: msg})
	}
	if m.inbox.perNode {
		m.inbox.warn.Do(m.warnInboxPerNode)
	}
	var live []string
	var errs []error
	for _, u := range distinct(users) {
		online, err := m.keepUnlessOnline(ctx, u, msg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: user %q: %w", ErrNotKept, u, err))
		}
		if online {
			live = append(live, u)
		}
	}
	if len(live) > 0 {
		if err := m.publish(ctx, &Publication{Kind: TargetUsers, Users: live, Message: msg}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keepUnlessOnline leaves msg in user's inbox when the user has no live connection, and
// reports whether it must be published live instead.
//
// The order closes the race with a login: the message is put first and liveness checked
// after. A login registers the connection before it takes the inbox, so either the check
// sees the user online, or the login's Take comes after the Put and gets the message. When
// the user is online, whichever of Remove and the login's Take reaches the message first
// delivers it: Remove succeeding means nobody took it, so it goes live; Remove failing means
// a login took it and delivers it. Either way exactly once.
func (m *Manager) keepUnlessOnline(ctx context.Context, user string, msg *Message) (online bool, notKept error) {
	if live, _ := m.localUserConns(user); live > 0 {
		// Registered here, and so past the point where its login takes the inbox: a live
		// delivery cannot be overtaken by that Take (a draining connection holds it back).
		return true, nil
	}
	in := m.inbox
	if err := in.store.Put(ctx, user, msg, in.size, in.ttl); err != nil {
		return true, err // not kept: live is all that is left
	}
	online, err := m.userOnline(ctx, user)
	if err != nil {
		// Kept: an unknown state errs on the side of a late delivery.
		m.cfg.Logger.Warn("switchboard: inbox: could not tell whether the user is online; the message is kept for their next login",
			"user", user, "id", msg.ID, "err", err)
		return false, nil
	}
	if !online {
		return false, nil
	}
	removed, err := in.store.Remove(ctx, user, msg.ID)
	if err != nil {
		m.cfg.Logger.Warn("switchboard: inbox: could not take back a message for an online user; it waits for their next login",
			"user", user, "id", msg.ID, "err", err) // most likely still kept: late rather than twice
		return false, nil
	}
	return removed, nil
}

// userOnline reports whether user has a live connection anywhere: on this node, or, when
// the nodes share a ClusterStore, on any node. It must count a connection from the moment
// it is registered for its user, which is before its login takes the inbox. A connection
// that is closing does not count: what is sent to it now would be dropped.
func (m *Manager) userOnline(ctx context.Context, user string) (bool, error) {
	live, closing := m.localUserConns(user)
	if live > 0 || m.cluster == nil {
		return live > 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	n, err := m.cluster.UserConns(ctx, user)
	return n > closing, err // the store still counts this node's closing ones
}

// localUserConns counts user's connections on this node that are live and those that are
// closing (still registered until their read loop ends).
func (m *Manager) localUserConns(user string) (live, closing int) {
	s := &m.reg.users[shardOf(user)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.m[user] {
		if c.closing() {
			closing++
		} else {
			live++
		}
	}
	return live, closing
}

// noneLive reports whether every connection of list is closing (or there are none).
func noneLive(list []*Conn) bool {
	for _, c := range list {
		if !c.closing() {
			return false
		}
	}
	return true
}

// closing reports whether a close of c has begun: nothing more can be queued for it.
func (c *Conn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeReq
}

// distinct returns list without repetitions, in order; list itself is not modified.
func distinct(list []string) []string {
	if len(list) < 2 {
		return list
	}
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
