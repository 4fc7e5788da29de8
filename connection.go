package switchboard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/switchboardrt/switchboard/auth"
)

// background is the context of socket reads and writes: their deadlines are enforced by the
// manager's sweeper, so they need none of their own (and allocate nothing for one).
var background = context.Background()

// Conn is one live client connection. Its methods are safe for concurrent use.
//
// A connection has a goroutine reading from its socket only while the client is sending
// (idle.go) and, only while something is queued for it, one goroutine writing; messages sent
// to it go through a bounded queue, so a slow client never blocks the sender (it is closed
// with 1013 instead).
type Conn struct {
	id       string
	m        *Manager
	ep       *endpoint
	ws       *websocket.Conn
	remoteIP string
	identity atomic.Pointer[auth.Identity]
	gate     atomic.Pointer[inboxGate] // while the user's inbox is being delivered (inbox_login.go)

	// The small fields are packed together: an idle server holds one Conn per client.
	state    stateBox
	batch    bool // negotiated SubprotocolV1Batch
	gone     bool // unregistered: no new subscriptions; guarded by subMu
	prefixed bool // the client's first bytes came with the handshake (idle.go)

	// Send queue, guarded by mu.
	mu           sync.Mutex
	queue        [][]byte
	closeCode    int
	closeReason  string
	authFailures int
	handlers     *Router   // per-connection handlers, created on first use
	rec          *recovery // subscriptions being set up with history (history_subscribe.go)
	slack        int32     // frames a recovery queued beyond SendQueueSize, until the writer takes them
	writing      bool
	closeReq     bool // a close was requested; nothing more is queued

	// Idle read side (idle.go), guarded by mu: parked means no goroutine reads the socket and
	// the idle poller watches it, in slot pslot-1 (0: none) of generation pgen. (Next to
	// the bools above, so that they share one word.)
	parked bool
	pslot  uint32
	pgen   uint32

	// Subscriptions, guarded by subMu (taken before any registry lock).
	subMu sync.Mutex
	subs  []string

	sock sockConn        // the hijacked network connection (idle.go)
	cork corkWriter      // gathers a batch's frames into one write, when leanWriter set it up
	br   *bufio.Reader   // the socket's read buffer when leanWriter provided it (readbuf.go)
	raw  syscall.RawConn // the socket, for the idle read side (idle.go); nil when unavailable

	limiter *rate.Limiter
	strikes *rate.Limiter // rejected messages; created on the first one

	// Times in nanoseconds on the manager's monotonic clock (Manager.now), read by the sweeper.
	connectedAt int64
	lastRead    atomic.Int64
	nextPing    atomic.Int64
	pingSent    atomic.Int64 // 0 when no ping is outstanding
	tokenWarn   atomic.Int64 // 0 when no expiry is scheduled
	tokenExp    atomic.Int64
	writeStart  atomic.Int64 // 0 when the writer is not inside a write
}

// ID returns the connection's client ID, unique on this node (a UUID).
func (c *Conn) ID() string { return c.id }

// State returns the connection's current state.
func (c *Conn) State() State { return c.state.load() }

// Identity returns the authenticated identity, or nil.
func (c *Conn) Identity() *auth.Identity { return c.identity.Load() }

// UserID returns the authenticated user's ID, or "".
func (c *Conn) UserID() string {
	if id := c.identity.Load(); id != nil {
		return id.UserID
	}
	return ""
}

// RemoteIP returns the client IP as seen by Config.ClientIP.
func (c *Conn) RemoteIP() string { return c.remoteIP }

// Codec returns the wire format of the connection's endpoint.
func (c *Conn) Codec() Codec { return c.ep.codec }

// Subscriptions returns a copy of the topics the connection is subscribed to.
func (c *Conn) Subscriptions() []string {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	return append([]string(nil), c.subs...)
}

// Handle registers a handler for message type typ on this connection only; it takes
// precedence over the manager's handler for the same type.
func (c *Conn) Handle(typ string, h HandlerFunc) {
	c.mu.Lock()
	if c.handlers == nil {
		c.handlers = NewRouter()
	}
	r := c.handlers
	c.mu.Unlock()
	r.Handle(typ, h)
}

func (c *Conn) handler(typ string) HandlerFunc {
	c.mu.Lock()
	r := c.handlers
	c.mu.Unlock()
	if r != nil {
		if h := r.lookup(typ); h != nil {
			return h
		}
	}
	return c.m.router.lookup(typ)
}

// Send queues msg for the connection. It never blocks; it returns ErrClosed when the
// connection is closing, and closes a connection whose queue is full (1013).
func (c *Conn) Send(msg *Message) error {
	if msg == nil {
		return fmt.Errorf("%w: nil message", ErrBadMessage)
	}
	msg = prepare(msg, msg.Topic)
	frame, err := c.ep.codec.Encode(make([]byte, 0, encodedSizeHint(msg)), msg)
	if err != nil {
		return err
	}
	if err := c.SendFrame(frame); err != nil {
		return err
	}
	c.m.onMessagesOut(msg.Type, 1, len(frame))
	return nil
}

// Reply sends a reply of type typ to req, with correlation_id set to req's id.
func (c *Conn) Reply(req *Message, typ string, payload any) error {
	msg, err := NewReply(req, typ, payload)
	if err != nil {
		return err
	}
	return c.Send(msg)
}

// SendError sends ERROR {code, message}, as a reply to req when req is not nil.
func (c *Conn) SendError(req *Message, code ErrorCode, message string) error {
	msg := NewError(code, message)
	if req != nil {
		msg.CorrelationID = req.ID
	}
	return c.Send(msg)
}

// SendFrame queues an already encoded frame, in the connection's codec, for the connection.
// The frame must not be modified afterwards.
func (c *Conn) SendFrame(frame []byte) error {
	switch c.enqueue(frame) {
	case enqueued:
		return nil
	case queueFull:
		return fmt.Errorf("%w: send queue overflow", ErrClosed)
	default:
		return ErrClosed
	}
}

type enqueueResult uint8

const (
	enqueued enqueueResult = iota
	queueClosed
	queueFull
	queueSkipped // a duplicate of a publication already queued
)

// overflow closes a slow consumer: its send queue is full.
func (c *Conn) overflow() {
	c.m.onSlowConsumer("queue_overflow")
	c.abort(CloseTryAgainLater, "slow consumer: send queue overflow")
}

// enqueueMessage queues the frame of ec's message in this connection's codec and returns
// its size, or 0 when nothing was queued.
func (c *Conn) enqueueMessage(ec *encodeCache) int {
	frame, err := ec.frame(c.ep.codec)
	if err != nil {
		if !errors.Is(err, ErrUnsupported) {
			c.m.reportError(c, fmt.Errorf("encoding %s: %w", ec.msg.Type, err))
		}
		return 0
	}
	var pub *Message
	if ec.msg.Topic != "" {
		pub = ec.msg
	}
	if c.enqueueTopic(pub, frame) != enqueued {
		return 0
	}
	return len(frame)
}

func (c *Conn) enqueue(frame []byte) enqueueResult { return c.enqueueTopic(nil, frame) }

// enqueueTopic queues frame. pub, when not nil, is the topic publication the frame encodes,
// which a subscription being set up with history holds back (see holdLocked).
func (c *Conn) enqueueTopic(pub *Message, frame []byte) enqueueResult {
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		return queueClosed
	}
	if c.rec != nil && pub != nil {
		if res, done := c.holdLocked(pub, frame); done {
			c.mu.Unlock()
			if res == queueFull {
				c.overflow()
			}
			return res
		}
	}
	if max := c.m.cfg.SendQueueSize; max > 0 && len(c.queue) >= max+int(c.slack) {
		c.mu.Unlock()
		c.overflow()
		return queueFull
	}
	c.queue = append(c.queue, frame)
	start := c.claimWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return enqueued
}

// claimWriterLocked reports whether the caller must start the writer goroutine for what it
// has just queued, and counts that goroutine in the manager's group. The caller holds c.mu
// and the read side has not finished, so the group cannot be at zero (Shutdown's Wait).
func (c *Conn) claimWriterLocked() bool {
	if c.writing || len(c.queue) == 0 && !c.closeReq {
		return false
	}
	c.writing = true
	c.m.wg.Add(1)
	return true
}

// writeLoop drains the send queue, then exits; enqueue starts it again when needed. After a
// requested close it sends the close frame once the queue is drained.
func (c *Conn) writeLoop() {
	defer c.m.wg.Done()
	typ := websocket.MessageText
	if c.ep.codec.Binary() {
		typ = websocket.MessageBinary
	}
	var batch [][]byte
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			closeNow := c.closeReq
			code, reason := c.closeCode, c.closeReason
			if !closeNow {
				c.writing = false
				// Keep a small drained slice for the next burst (one allocation less per
				// wake-up); give a grown one back to the GC, idle connections stay small.
				keep := c.queue
				if cap(batch) > cap(keep) {
					keep = batch[:0]
				}
				if cap(keep) > 4 {
					keep = nil
				}
				c.queue = keep
			}
			c.mu.Unlock()
			if closeNow {
				c.closeSocket(code, reason)
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.slack = 0
		c.mu.Unlock()

		c.writeStart.Store(c.m.now())
		corked := c.cork.conn != nil
		if corked {
			c.cork.cork()
		}
		var err error
		if c.batch {
			err = c.writeBatched(typ, batch)
		} else {
			for _, frame := range batch {
				if err = c.ws.Write(background, typ, frame); err != nil {
					break
				}
			}
		}
		clear(batch)
		if corked {
			if ferr := c.cork.uncork(); err == nil {
				err = ferr
			}
		}
		c.writeStart.Store(0)
		if err != nil {
			c.mu.Lock()
			c.queue = nil
			c.closeReq = true
			c.writing = false
			c.mu.Unlock()
			_ = c.ws.CloseNow()
			return
		}
		c.m.stats.framesWritten.Add(uint64(len(batch)))
	}
}

// closeSocket runs the close handshake: it sends the close frame and waits (at most a few
// seconds) for the client's, while the read loop keeps draining what the client sends.
func (c *Conn) closeSocket(code int, reason string) {
	c.mu.Lock()
	c.writing = false
	c.mu.Unlock()
	_ = c.ws.Close(websocket.StatusCode(code), reason)
}

// Close sends DISCONNECT {code, reason}, then closes the connection with that code once
// everything queued before it has been written. It returns at once; the close handshake
// completes in the background. Closing a closed connection does nothing.
func (c *Conn) Close(code int, reason string) {
	c.closeWith(code, reason, true)
}

// closeWith starts a graceful close: optionally a DISCONNECT message, then the close frame
// after the queue has drained.
func (c *Conn) closeWith(code int, reason string, disconnect bool) {
	var frame []byte
	if disconnect {
		msg, err := NewMessage(TypeDisconnect, map[string]any{"code": code, "reason": reason})
		if err == nil {
			frame, _ = c.ep.codec.Encode(nil, msg)
		}
	}
	reason = closeReason(reason)
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		return
	}
	c.closeReq = true
	c.closeCode, c.closeReason = code, reason
	if frame != nil {
		c.queue = append(c.queue, frame)
	}
	start := c.claimWriterLocked()
	c.mu.Unlock()
	c.toDisconnecting()
	if start {
		go c.writeLoop()
	}
}

// abort closes the connection without waiting for queued messages: for slow consumers,
// stalled writes and dead peers. The close frame is attempted in the background.
func (c *Conn) abort(code int, reason string) {
	reason = closeReason(reason)
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		return
	}
	c.closeReq = true
	c.closeCode, c.closeReason = code, reason
	c.queue = nil
	c.m.wg.Add(1) // under mu: the read loop has not finished, so the group is not at zero
	c.mu.Unlock()
	go func() {
		defer c.m.wg.Done()
		c.toDisconnecting() // here, not in the caller: it may hold registry locks, and hooks run
		_ = c.ws.Close(websocket.StatusCode(code), reason)
	}()
}

// kill closes the socket at once, without a close handshake, whatever state the
// connection is in: for writes that have stalled, where even a close frame cannot go out.
func (c *Conn) kill(code int, reason string) {
	c.mu.Lock()
	if !c.closeReq {
		c.closeReq = true
		c.closeCode, c.closeReason = code, reason
	}
	c.queue = nil
	c.mu.Unlock()
	c.closeTransport()
}

// closeTransport closes the network connection under the WebSocket at once. Unlike the
// library's CloseNow it does not wait for a close handshake already under way, so a peer
// that has stopped reading cannot hold anything up; the library's own goroutines see the
// closed socket and end.
func (c *Conn) closeTransport() {
	if c.sock.Conn != nil {
		_ = c.sock.Close()
		return
	}
	c.m.wg.Add(1)
	go func() { // CloseNow may wait for a handshake under way: not on the caller's goroutine
		defer c.m.wg.Done()
		_ = c.ws.CloseNow()
	}()
}

func (c *Conn) toDisconnecting() {
	for {
		s := c.state.load()
		if !s.Live() {
			return
		}
		if err := c.state.moveFrom(s, StateDisconnecting); err == nil {
			c.m.stateChanged(c, s, StateDisconnecting)
			return
		}
	}
}

// setState moves the connection to `to`, reporting an illegal transition to OnError.
func (c *Conn) setState(to State) bool {
	from, err := c.state.move(to)
	if err != nil {
		c.m.reportError(c, err)
		return false
	}
	c.m.stateChanged(c, from, to)
	return true
}

// readMessages reads and handles messages until none is waiting (then it hands the idle
// connection over, see rest in idle.go, and returns) or the connection ends (then it
// unregisters the connection). Its stack grows as the handlers need; exiting when idle gives
// it back.
func (c *Conn) readMessages() {
	var err error
	for {
		var typ websocket.MessageType
		var r io.Reader
		typ, r, err = c.ws.Reader(context.Background())
		if err != nil {
			break
		}
		var data []byte
		data, err = io.ReadAll(r)
		if err != nil {
			break
		}
		c.lastRead.Store(c.m.now())
		if c.state.load().Live() && c.allow() {
			c.ep.protocol.OnMessage(c.m.ctx, c, data, typ == websocket.MessageBinary)
		} // else closing: drain what the client still sends
		if c.raw != nil && c.idle() && c.rest() {
			return
		}
	}
	c.finish(err)
	c.releaseIdle()
	c.m.wg.Done()
}

// Allow charges one more inbound message to the connection's rate limit, for protocols
// that carry several messages in one frame (the frame itself has been charged once already).
// When it returns false the message must be dropped: the client has been sent ERROR
// rate_limited (in the endpoint's codec), and sustained abuse closes the connection (1008).
// Call it from Protocol.OnMessage, on the connection's read goroutine, as the limiter's
// abuse counter belongs to that goroutine.
func (c *Conn) Allow() bool { return c.allow() }

// allow charges the message rate limiter; over the limit it answers ERROR rate_limited and,
// after RateLimitStrikes rejections (refilled at one per second), closes with 1008.
func (c *Conn) allow() bool {
	if c.limiter == nil || c.limiter.Allow() {
		return true
	}
	c.m.onRateLimited()
	if c.strikes == nil {
		c.strikes = rate.NewLimiter(1, c.m.cfg.RateLimitStrikes)
	}
	if c.m.cfg.RateLimitStrikes > 0 && !c.strikes.Allow() {
		c.sendError(nil, CodeRateLimited, "message rate exceeded repeatedly")
		c.closeWith(ClosePolicyViolation, "message rate exceeded", true)
		return false
	}
	c.sendError(nil, CodeRateLimited, "message rate exceeded; message dropped")
	return false
}

// sendError sends ERROR as best effort: a connection closing or overflowing is past caring.
func (c *Conn) sendError(req *Message, code ErrorCode, message string) {
	_ = c.SendError(req, code, message)
}

// finish runs once the read loop ends: it settles the close code, unregisters the
// connection everywhere and calls the disconnect hooks.
func (c *Conn) finish(readErr error) {
	c.mu.Lock()
	requested := c.closeReq
	code, reason := c.closeCode, c.closeReason
	c.closeReq = true
	c.queue = nil
	c.mu.Unlock()

	if !requested {
		switch {
		case websocket.CloseStatus(readErr) != -1:
			var ce websocket.CloseError
			errors.As(readErr, &ce)
			code, reason = int(ce.Code), ce.Reason
		case errors.Is(readErr, websocket.ErrMessageTooBig):
			code, reason = CloseMessageTooBig, "message too big"
		default:
			code, reason = CloseAbnormal, "connection lost"
		}
		if code == CloseNormal || code == CloseGoingAway || code == CloseMessageTooBig {
			c.toDisconnecting()
		} else if code == CloseAbnormal {
			if s := c.state.load(); s != StateDisconnecting {
				if _, err := c.state.move(StateError); err == nil {
					c.m.stateChanged(c, s, StateError)
				}
			}
		} else {
			c.toDisconnecting()
		}
		if code == CloseMessageTooBig {
			// The library has sent the close frame; finish the handshake, discarding the rest
			// of the oversized message, so the client reads 1009 rather than a reset.
			_ = c.ws.Close(CloseMessageTooBig, reason)
		} else {
			_ = c.ws.CloseNow()
		}
	}

	c.subMu.Lock()
	c.gone = true
	subs := c.subs
	c.subs = nil
	c.subMu.Unlock()
	for _, t := range subs {
		c.m.removeSub(t, c)
		c.m.presenceEvent(TypeLeave, t, c)
	}
	if id := c.identity.Load(); id != nil {
		c.m.forgetUser(id.UserID, c)
	}
	c.m.reg.removeConn(c)
	c.m.onClosed(code)

	if s := c.state.load(); s != StateDisconnected {
		if _, err := c.state.move(StateDisconnected); err == nil {
			c.m.stateChanged(c, s, StateDisconnected)
		}
	}
	c.ep.protocol.OnClose(c, code, reason)
	if f := c.m.cfg.OnDisconnect; f != nil {
		f(c, code, reason)
	}
	c.m.cfg.Logger.Debug("switchboard: disconnected", "client", c.id, "code", code, "reason", reason)
}

// CountIn records an inbound frame of n bytes and message type typ in the manager's
// statistics and Observer. The default protocol calls it for every frame; protocols of
// other wire formats should too ("invalid" for frames that cannot be decoded).
func (c *Conn) CountIn(typ string, n int) { c.m.onMessageIn(typ, n) }

// Authenticate checks token with the manager's Authenticator and attaches the identity to
// the connection. A fresh token for the connection's user extends the session; a token of
// another user is refused with ErrUserMismatch and the current identity is kept.
//
// When the connection is its user's first on this node, the messages kept in the user's
// inbox (Config.Inbox) are queued before Authenticate returns, so they reach the client
// before whatever the caller sends next; AuthenticateWith lets a protocol queue its answer
// ahead of them.
func (c *Conn) Authenticate(ctx context.Context, token string) (*auth.Identity, error) {
	return c.authenticate(ctx, token, nil)
}

// authenticate is Authenticate; ack, if not nil, is called once the connection is
// authenticated and before the inbox is delivered, to queue the protocol's answer first.
func (c *Conn) authenticate(ctx context.Context, token string, ack func(*auth.Identity)) (*auth.Identity, error) {
	a := c.m.cfg.Authenticator
	if a == nil {
		return nil, ErrAuthDisabled
	}
	prev := c.state.load()
	if prev != StateConnected && prev != StateAuthenticated {
		return nil, fmt.Errorf("%w: cannot authenticate in state %s", ErrClosed, prev)
	}
	if !c.moveFrom(prev, StateAuthenticating) {
		return nil, ErrClosed
	}
	id, err := a.Authenticate(ctx, token)
	if err == nil {
		err = c.attach(id)
	}
	if err != nil {
		c.m.onAuthFailure(err)
		c.moveFrom(StateAuthenticating, prev)
		return nil, err
	}
	if !c.moveFrom(StateAuthenticating, StateAuthenticated) {
		return nil, ErrClosed
	}
	if ack != nil {
		ack(id)
	}
	c.deliverInbox(ctx)
	return id, nil
}

// moveFrom changes the state from exactly `from` to `to`. It fails quietly when the
// connection started closing meanwhile, and reports any other failure to OnError.
func (c *Conn) moveFrom(from, to State) bool {
	if err := c.state.moveFrom(from, to); err != nil {
		if c.state.load().Live() {
			c.m.reportError(c, err)
		}
		return false
	}
	c.m.stateChanged(c, from, to)
	return true
}

// attach makes id the connection's identity, indexing it under its user.
func (c *Conn) attach(id *auth.Identity) error {
	if id == nil || id.UserID == "" {
		return fmt.Errorf("%w: authenticator returned no user", auth.ErrTokenInvalid)
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.gone {
		return ErrClosed
	}
	if cur := c.identity.Load(); cur != nil {
		if cur.UserID != id.UserID {
			return ErrUserMismatch
		}
	} else if err := c.admitWithInbox(id.UserID); err != nil {
		return err
	}
	prev := c.identity.Swap(id)
	if prev == nil {
		c.m.clusterIdentified(c)
	}
	if prev == nil || !prev.ExpiresAt.Equal(id.ExpiresAt) {
		// The same token again changes nothing: no second warning for it.
		c.scheduleExpiry(id.ExpiresAt)
	}
	return nil
}

// scheduleExpiry arms the shared sweeper: ERROR token_expiring shortly before exp, close
// 4001 at exp.
func (c *Conn) scheduleExpiry(exp time.Time) {
	if exp.IsZero() {
		c.tokenWarn.Store(0)
		c.tokenExp.Store(0)
		return
	}
	left := time.Until(exp)
	now := c.m.now()
	c.tokenExp.Store(now + int64(left))
	warn := c.m.cfg.TokenExpiryWarning
	if warn < 0 {
		c.tokenWarn.Store(0) // no warning
		return
	}
	if warn > left/2 {
		warn = left / 2
	}
	c.tokenWarn.Store(now + int64(left-warn))
}

// Subscribe subscribes the connection to topics, all or none: each topic must be valid and
// allowed by the TopicAuthorizer, and the total must stay within MaxSubscriptions. Topics
// already subscribed count as success. On failure the error is a *SubscribeError. It does
// not read topic history: SubscribeWith also gives positions and recovers missed
// publications.
func (c *Conn) Subscribe(ctx context.Context, topics ...string) error {
	fresh, err := c.subscribe(ctx, topics, nil)
	c.announce(TypeJoin, fresh)
	return err
}

// subscribe does Subscribe's work and returns the topics newly subscribed, whose JOIN the
// caller announces (after its reply, in the default protocol). With held not nil, the
// publications of the new topics with history are held back from before their
// registration, and *held lists them (see SubscribeWith).
func (c *Conn) subscribe(ctx context.Context, topics []string, held *[]*heldTopic) ([]string, error) {
	failed := map[string]string{}
	var firstErr error
	fail := func(t, reason string, err error) {
		failed[t] = reason
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, t := range topics {
		if err := c.m.validTopic(t); err != nil {
			fail(t, "invalid_topic", err)
			continue
		}
		if err := c.m.cfg.TopicAuthorizer(ctx, c.identity.Load(), t); err != nil {
			fail(t, string(CodeForbidden), err)
		}
	}
	if len(failed) > 0 {
		return nil, &SubscribeError{Topics: failed, Err: firstErr}
	}

	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.gone {
		return nil, ErrClosed
	}
	var fresh []string
	for _, t := range topics {
		if !contains(c.subs, t) && !contains(fresh, t) {
			fresh = append(fresh, t)
		}
	}
	if max := c.m.cfg.MaxSubscriptions; max >= 0 && len(c.subs)+len(fresh) > max {
		for _, t := range fresh {
			failed[t] = "too_many_subscriptions"
		}
		return nil, &SubscribeError{Topics: failed, Err: fmt.Errorf("%w (max %d)", ErrTooManySubscriptions, max)}
	}
	if held != nil {
		*held = c.holdTopics(fresh)
	}
	for i, t := range fresh {
		if err := c.m.addSub(ctx, t, c); err != nil {
			for _, u := range fresh[:i] {
				c.m.removeSub(u, c)
			}
			if held != nil {
				c.dropHolds(*held)
				*held = nil
			}
			failed[t] = string(CodeInternal)
			return nil, &SubscribeError{Topics: failed, Err: err}
		}
	}
	c.subs = append(c.subs, fresh...)
	return fresh, nil
}

// announce publishes JOIN or LEAVE for each topic (those Config.PresenceEvents selects).
func (c *Conn) announce(typ string, topics []string) {
	for _, t := range topics {
		c.m.presenceEvent(typ, t, c)
	}
}

// Unsubscribe removes the connection from topics; topics it is not subscribed to are ignored.
func (c *Conn) Unsubscribe(topics ...string) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for _, t := range topics {
		for i, s := range c.subs {
			if s == t {
				c.subs = append(c.subs[:i], c.subs[i+1:]...)
				c.m.removeSub(t, c)
				c.dropHold(t)
				c.m.presenceEvent(TypeLeave, t, c)
				break
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SubscribeError reports which topics of a SUBSCRIBE failed and why (reason per topic:
// "invalid_topic", "forbidden", "too_many_subscriptions", "internal").
type SubscribeError struct {
	Topics map[string]string
	Err    error
}

// Error implements the error interface.
func (e *SubscribeError) Error() string {
	return fmt.Sprintf("switchboard: subscribe refused for %d topic(s): %v", len(e.Topics), e.Err)
}

// Unwrap returns the first underlying error.
func (e *SubscribeError) Unwrap() error { return e.Err }
