package switchboard

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/switchboardrt/switchboard/auth"
)

// At login, a user's first connection on a node takes the user's inbox and delivers what
// was kept, in order. Two things make this safe:
//
//   - The connection is registered for its user before it takes the inbox, so that a
//     publisher that put a message after the Take sees the user online (see
//     Manager.keepUnlessOnline).
//   - From registration until the kept messages are queued, the connection holds back the
//     user messages delivered to it live (an inboxGate), and queues them right after the
//     kept ones. Kept messages are thus never overtaken by live ones.

// AuthenticateOptions are the options of Conn.AuthenticateWith.
type AuthenticateOptions struct {
	// Answer, when set, is called once the connection is authenticated as id, before the
	// messages kept in the user's inbox are queued: a protocol queues its answer to the
	// client there (with Send or SendFrame), so that the kept messages follow it.
	Answer func(id *auth.Identity)
}

// AuthenticateWith is Authenticate with options: opts.Answer queues the protocol's answer
// ahead of the messages kept for the user. The default protocol answers AUTHENTICATE this
// way (AUTHENTICATE_SUCCESS, then the kept messages), and so does adapters/jsonrpc.
func (c *Conn) AuthenticateWith(ctx context.Context, token string, opts AuthenticateOptions) (*auth.Identity, error) {
	return c.authenticate(ctx, token, opts.Answer)
}

// inboxGate holds back a connection's live user messages while its inbox is delivered.
type inboxGate struct {
	mu   sync.Mutex
	held [][]byte // frames in the connection's codec, in arrival order
	open bool     // the kept messages are queued: deliver directly from now on
}

// admitWithInbox admits c as user's (see admitUser) behind a gate, installed before c can
// be seen as the user's, and kept only when c is the user's first connection on this node:
// the one that will take the inbox.
func (c *Conn) admitWithInbox(user string) error {
	if c.m.inbox == nil {
		_, err := c.admitUser(user)
		return err
	}
	c.gate.Store(&inboxGate{})
	first, err := c.admitUser(user)
	if err != nil {
		c.gate.Store(nil) // and what it held: those were for a connection that is not the user's
		return err
	}
	if !first {
		c.releaseInbox(nil)
	}
	return nil
}

// holdForInbox keeps the frame of ec's message back while c's inbox is being delivered,
// and reports whether it did. deliver calls it for user messages.
func (c *Conn) holdForInbox(ec *encodeCache) bool {
	g := c.gate.Load()
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return false
	}
	frame, err := ec.frame(c.ep.codec)
	if err != nil {
		return true // the codec cannot carry it: nothing to hold, nothing to send
	}
	if max := c.m.cfg.SendQueueSize; max > 0 && len(g.held) >= max {
		// As a full send queue would: the client cannot keep up.
		c.m.onSlowConsumer("queue_overflow")
		c.abort(CloseTryAgainLater, "slow consumer: send queue overflow")
		return true
	}
	g.held = append(g.held, frame)
	c.m.onMessagesOut(ec.msg.Type, 1, len(frame))
	return true
}

// releaseInbox queues kept (frames of kept messages, oldest first) then what the gate held
// back, and removes the gate. It reports false when the connection was closing, in which
// case nothing was queued.
func (c *Conn) releaseInbox(kept [][]byte) bool {
	g := c.gate.Load()
	if g == nil {
		return c.enqueueRun(kept)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ok := c.enqueueRun(append(kept, g.held...))
	g.open, g.held = true, nil
	c.gate.Store(nil)
	return ok
}

// deliverInbox takes the inbox of c's user and queues its messages, oldest first, followed
// by the live ones held back meanwhile. It is called once c is authenticated; it does
// nothing unless c is its user's first connection on this node (c has a gate), so that a
// message being published to a user who is online is never taken by their next connection
// (and delivered to that one alone).
func (c *Conn) deliverInbox(ctx context.Context) {
	if c.gate.Load() == nil {
		return
	}
	user := c.UserID()
	// Bounded like the cluster store's calls: a store that hangs must not hold the
	// connection's goroutine (and the user's live messages, held back) for long.
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	msgs, err := c.m.inbox.store.Take(ctx, user)
	if err != nil {
		// What stays kept is delivered at the user's next login.
		c.m.reportError(c, fmt.Errorf("switchboard: taking the inbox of %q: %w", user, err))
	}
	frames := make([][]byte, 0, len(msgs))
	sent := make([]*Message, 0, len(msgs))
	for _, msg := range msgs {
		ec := encodeCache{msg: msg}
		frame, err := ec.frame(c.ep.codec)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				c.m.reportError(c, fmt.Errorf("encoding kept %s: %w", msg.Type, err))
			}
			continue
		}
		frames = append(frames, frame)
		sent = append(sent, msg)
	}
	if c.releaseInbox(frames) {
		for i, msg := range sent {
			c.m.onMessagesOut(msg.Type, 1, len(frames[i]))
		}
		return
	}
	// The connection closed before its messages could be queued: keep them again, in
	// order, for the next login.
	in := c.m.inbox
	for _, msg := range msgs {
		if err := in.store.Put(ctx, user, msg, in.size, in.ttl); err != nil {
			c.m.reportError(c, fmt.Errorf("switchboard: keeping again for %q: %w", user, err))
			return
		}
	}
}

// enqueueRun queues frames in one step. The send queue's cap does not apply to them: they
// are bounded by Config.Inbox.Size and Config.SendQueueSize, and a login is not a slow
// consumer.
func (c *Conn) enqueueRun(frames [][]byte) bool {
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		return false
	}
	if len(frames) == 0 {
		c.mu.Unlock()
		return true
	}
	c.queue = append(c.queue, frames...)
	start := c.claimWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}
