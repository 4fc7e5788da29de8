package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Subscribing to topics with history, and recovering what a client missed.
//
// For each topic with history that a SUBSCRIBE (or SubscribeWith) subscribes anew:
//
//  1. the connection starts holding the topic's live publications back (heldTopic), before
//     it is registered as a subscriber, so that none can slip past the steps below;
//  2. it is registered, and the topic's history is read: the publications after the
//     client's position when it asked to recover, or only the current position;
//  3. under the send-queue lock, so that nothing interleaves, the reply is queued
//     (SUBSCRIBE_SUCCESS), then the recovered publications, then the held ones that are
//     newer than the last one queued (a publication may be both in the history read and
//     held: it is sent once), and the topic goes live.
//
// A broker whose deliveries may lag behind its history reads (a cluster broker) can still
// deliver a publication the read has already returned after step 3; for those brokers the
// heldTopic stays as a guard that drops such duplicates until the first newer publication
// arrives. The in-memory broker delivers under the lock its reads take, and needs none.

// SubscribeOptions are the options of Conn.SubscribeWith.
type SubscribeOptions struct {
	// Recover gives, per topic, the position of the last publication the client has; the
	// publications after it are sent before the live ones when the history still holds
	// all of them. Topics not subscribed by this call are ignored.
	Recover map[string]StreamPosition
	// Reply, when set, builds the message queued first, before any recovered or live
	// publication of the topics subscribed (the default protocol's SUBSCRIBE_SUCCESS). It
	// may return nil for none.
	Reply func(SubscribeResult) *Message
	// ReplyFrame is Reply for a protocol that encodes its own answers: it returns a frame
	// already in the connection's wire format (nil for none). It is used when Reply is nil.
	ReplyFrame func(SubscribeResult) []byte
}

// SubscribeResult reports what SubscribeWith did for the topics it subscribed anew. Topics
// the connection was already subscribed to appear in neither map: their publications have
// kept coming.
type SubscribeResult struct {
	// Recovered says, for each topic of SubscribeOptions.Recover, whether every publication
	// after the client's position has been queued (true), or none (false: the epoch
	// changed, the history was trimmed or has expired past the position, more than
	// Config.RecoverLimit were missed, or the topic has no history).
	Recovered map[string]bool
	// Positions gives, for each topic with history, the position of the last publication
	// queued for the client once the recovered ones are through: the position to recover
	// from next time, until a newer publication arrives.
	Positions map[string]StreamPosition
}

// recovery is a connection's state while some of its subscriptions are being set up with
// history, guarded by Conn.mu. Conn.rec is nil otherwise, so an idle connection pays one
// pointer for it.
type recovery struct {
	topics []*heldTopic
}

// heldTopic holds a topic's live publications for a connection while its history is read.
// After the history is queued it may stay as a guard (guard set) that drops publications
// at or before last, until a newer one arrives.
type heldTopic struct {
	topic  string
	guard  bool
	last   StreamPosition
	frames []heldFrame
}

type heldFrame struct {
	pos   StreamPosition // Seq 0: a message without a position (a presence event)
	frame []byte
}

func (r *recovery) find(topic string) *heldTopic {
	for _, h := range r.topics {
		if h.topic == topic {
			return h
		}
	}
	return nil
}

func (r *recovery) index(h *heldTopic) int {
	for i, x := range r.topics {
		if x == h {
			return i
		}
	}
	return -1
}

// dropLocked forgets h; the connection's recovery ends with its last topic. c.mu is held.
func (c *Conn) dropLocked(h *heldTopic) {
	r := c.rec
	if r == nil {
		return
	}
	if i := r.index(h); i >= 0 {
		r.topics = append(r.topics[:i], r.topics[i+1:]...)
	}
	if len(r.topics) == 0 {
		c.rec = nil
	}
}

// holdTopics starts holding back the publications of topics, and returns their heldTopics.
// It runs before the topics are registered, so that nothing of them is queued before the
// subscription's reply: for a topic with history, until its history has been read; for any
// other, until the reply is queued.
func (c *Conn) holdTopics(topics []string) []*heldTopic {
	if len(topics) == 0 {
		return nil
	}
	held := make([]*heldTopic, len(topics))
	for i, t := range topics {
		held[i] = &heldTopic{topic: t}
	}
	c.mu.Lock()
	if c.rec == nil {
		c.rec = &recovery{}
	}
	for _, h := range held {
		if old := c.rec.find(h.topic); old != nil { // a guard left from an earlier subscription
			c.dropLocked(old)
			if c.rec == nil {
				c.rec = &recovery{}
			}
		}
		c.rec.topics = append(c.rec.topics, h)
	}
	c.mu.Unlock()
	return held
}

// dropHolds forgets held topics, for a subscription that failed.
func (c *Conn) dropHolds(held []*heldTopic) {
	c.mu.Lock()
	for _, h := range held {
		c.dropLocked(h)
	}
	c.mu.Unlock()
}

// dropHold forgets what is held for topic, for an unsubscription.
func (c *Conn) dropHold(topic string) {
	c.mu.Lock()
	if c.rec != nil {
		if h := c.rec.find(topic); h != nil {
			c.dropLocked(h)
		}
	}
	c.mu.Unlock()
}

// holdLocked is enqueue's check, with c.mu held and c.rec set, for a topic publication:
// done reports that the publication was dealt with here (held, dropped as a duplicate, or
// overflowing), with the result to return.
func (c *Conn) holdLocked(pub *Message, frame []byte) (res enqueueResult, done bool) {
	h := c.rec.find(pub.Topic)
	if h == nil {
		return 0, false
	}
	if h.guard {
		if pub.Seq == 0 {
			return 0, false
		}
		if pub.Epoch == h.last.Epoch && pub.Seq <= h.last.Seq {
			return queueSkipped, true // sent already, from the history
		}
		c.dropLocked(h) // the broker has caught up with the history read
		return 0, false
	}
	// Held publications count against the queue size: a topic that outpaces the history
	// read by a whole queue makes the connection a slow consumer, as it would live.
	if max := c.m.cfg.SendQueueSize; max > 0 && len(h.frames) >= max {
		return queueFull, true
	}
	h.frames = append(h.frames, heldFrame{pos: StreamPosition{Seq: pub.Seq, Epoch: pub.Epoch}, frame: frame})
	return enqueued, true
}

// recoveryPlan is what will be queued for one held topic.
type recoveryPlan struct {
	held   *heldTopic
	frames [][]byte // the recovered publications, encoded
	types  []string // their message types, for the statistics
	last   StreamPosition
	known  bool // last is known: the history read succeeded
}

// SubscribeWith subscribes the connection to topics like Subscribe, and also gives the
// positions of the topics with history, recovers the publications the client missed
// (opts.Recover) and queues opts.Reply before them. The recovered publications are queued
// before it returns: they reach the client before anything sent after the call.
//
// Subscribe does not read history: a protocol that offers recovery uses SubscribeWith.
func (c *Conn) SubscribeWith(ctx context.Context, opts SubscribeOptions, topics ...string) (SubscribeResult, error) {
	res, fresh, err := c.subscribeWith(ctx, opts, topics)
	c.announce(TypeJoin, fresh)
	return res, err
}

// subscribeWith does SubscribeWith's work and returns the topics newly subscribed.
func (c *Conn) subscribeWith(ctx context.Context, opts SubscribeOptions, topics []string) (SubscribeResult, []string, error) {
	var held []*heldTopic
	fresh, err := c.subscribe(ctx, topics, &held)
	if err != nil {
		return SubscribeResult{}, nil, err
	}
	var res SubscribeResult
	plans := make([]recoveryPlan, 0, len(held))
	for _, h := range held {
		if _, ok := c.m.hist.rule(h.topic); !ok {
			// No history: nothing to read; the held publications follow the reply.
			plans = append(plans, recoveryPlan{held: h})
			continue
		}
		plans = append(plans, c.planRecovery(ctx, h, opts.Recover, &res))
	}
	for _, t := range fresh { // asked to recover a topic without history: not recovered
		if _, asked := opts.Recover[t]; asked && !res.has(t) {
			res.setRecovered(t, false)
		}
	}
	var reply []byte
	var replyType string
	if opts.Reply != nil {
		if msg := opts.Reply(res); msg != nil {
			msg = prepare(msg, msg.Topic)
			reply, err = c.ep.codec.Encode(make([]byte, 0, encodedSizeHint(msg)), msg)
			if err != nil {
				c.m.reportError(c, fmt.Errorf("encoding %s: %w", msg.Type, err))
				reply = nil
			}
			replyType = msg.Type
		}
	} else if opts.ReplyFrame != nil {
		reply = opts.ReplyFrame(res) // counted by nobody, like SendFrame
	}
	c.queueRecovery(reply, replyType, plans)
	return res, fresh, nil
}

func (r *SubscribeResult) has(topic string) bool {
	_, ok := r.Recovered[topic]
	return ok
}

func (r *SubscribeResult) setRecovered(topic string, ok bool) {
	if r.Recovered == nil {
		r.Recovered = make(map[string]bool)
	}
	r.Recovered[topic] = ok
}

func (r *SubscribeResult) setPosition(topic string, p StreamPosition) {
	if r.Positions == nil {
		r.Positions = make(map[string]StreamPosition)
	}
	r.Positions[topic] = p
}

// planRecovery reads h's topic's history: the current position, and the publications after
// the client's position when it asked to recover.
func (c *Conn) planRecovery(ctx context.Context, h *heldTopic, recover map[string]StreamPosition, res *SubscribeResult) recoveryPlan {
	hist := c.m.hist
	rule, _ := hist.rule(h.topic)
	since, asked := recover[h.topic]
	q := HistoryQuery{TTL: rule.TTL}
	if asked {
		q.Since, q.Limit = &since, hist.limit
	}
	plan := recoveryPlan{held: h}
	r, err := hist.broker.History(ctx, h.topic, q)
	if err != nil {
		// No position: the held publications go out as they are, nothing is recovered.
		c.m.cfg.Logger.Warn("switchboard: history read failed", "topic", h.topic, "client", c.id, "err", err)
		if asked {
			res.setRecovered(h.topic, false)
		}
		return plan
	}
	plan.last, plan.known = r.Position, true
	res.setPosition(h.topic, r.Position)
	c.m.seedLast(h.topic, r.Position)
	if !asked {
		return plan
	}
	res.setRecovered(h.topic, r.Complete)
	if !r.Complete {
		return plan // the application refetches; live publications continue from Position
	}
	for _, pub := range r.Publications {
		if pub.Epoch != since.Epoch || pub.Seq <= since.Seq {
			continue // not after the client's position (a broker's mistake): never resend
		}
		frame, err := c.ep.codec.Encode(make([]byte, 0, encodedSizeHint(pub)), pub)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				c.m.reportError(c, fmt.Errorf("encoding %s: %w", pub.Type, err))
			}
			continue
		}
		plan.frames = append(plan.frames, frame)
		plan.types = append(plan.types, pub.Type)
	}
	return plan
}

// queueRecovery queues, in one step under the send-queue lock, the reply, then for each
// plan the recovered publications and the held ones not sent yet, and lets the topics go
// live. The frames it adds beyond the reply may take the queue over SendQueueSize: the
// limit applies again once the writer has taken them (see Conn.slack).
func (c *Conn) queueRecovery(reply []byte, replyType string, plans []recoveryPlan) {
	c.mu.Lock()
	if c.closeReq {
		for _, p := range plans {
			c.dropLocked(p.held)
		}
		c.mu.Unlock()
		return
	}
	if max := c.m.cfg.SendQueueSize; max > 0 && reply != nil && len(c.queue) >= max+int(c.slack) {
		for _, p := range plans {
			c.dropLocked(p.held)
		}
		c.mu.Unlock()
		c.overflow()
		return
	}
	if reply != nil {
		c.queue = append(c.queue, reply)
	}
	before := len(c.queue)
	for i := range plans {
		c.releaseLocked(&plans[i])
	}
	c.slack += int32(len(c.queue) - before)
	start := c.claimWriterLocked()
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	if reply != nil && replyType != "" {
		c.m.onMessagesOut(replyType, 1, len(reply))
	}
	for _, p := range plans {
		for i, f := range p.frames {
			c.m.onMessagesOut(p.types[i], 1, len(f))
		}
	}
}

// releaseLocked queues plan's recovered publications and the held ones after them, and
// moves the topic to live (or to guard). c.mu is held.
func (c *Conn) releaseLocked(p *recoveryPlan) {
	h := p.held
	if c.rec == nil || c.rec.index(h) < 0 {
		p.frames = nil // unsubscribed meanwhile
		return
	}
	c.queue = append(c.queue, p.frames...)
	last, known := p.last, p.known
	for _, f := range h.frames {
		if f.pos.Seq != 0 {
			if known && f.pos.Epoch == last.Epoch && f.pos.Seq <= last.Seq {
				continue // in the history read as well: queued already, or older than the position
			}
			last, known = f.pos, true
		}
		c.queue = append(c.queue, f.frame)
	}
	h.frames = nil
	if !known || c.m.hist.ordered { // known implies a history read, so hist is set
		c.dropLocked(h)
	} else {
		h.guard, h.last = true, last
	}
}

// subscribeOptionsOf reads the "recover" object of a SUBSCRIBE and sets the reply to
// SUBSCRIBE_SUCCESS {subscriptions, recovered, positions}. Errors wrap ErrBadMessage.
func subscribeOptionsOf(msg *Message, topics []string) (SubscribeOptions, error) {
	rec, err := recoverOf(msg)
	if err != nil {
		return SubscribeOptions{}, err
	}
	reply := func(r SubscribeResult) *Message {
		payload := map[string]any{"subscriptions": topics}
		if len(r.Recovered) > 0 {
			payload["recovered"] = r.Recovered
		}
		if len(r.Positions) > 0 {
			payload["positions"] = r.Positions
		}
		out, err := NewReply(msg, TypeSubscribeSuccess, payload)
		if err != nil {
			return nil
		}
		return out
	}
	return SubscribeOptions{Recover: rec, Reply: reply}, nil
}

// recoverOf reads {"recover": {"<topic>": {"seq": 41, "epoch": "…"}, …}}; absent or null
// means no recovery.
func recoverOf(msg *Message) (map[string]StreamPosition, error) {
	var req struct {
		Recover json.RawMessage `json:"recover"`
	}
	if err := msg.DecodePayload(&req); err != nil {
		return nil, err
	}
	if len(req.Recover) == 0 || string(req.Recover) == "null" {
		return nil, nil
	}
	const form = `"recover" must be {"<topic>": {"seq": <unsigned integer>, "epoch": "<string>"}, …}`
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(req.Recover, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadMessage, form)
	}
	out := make(map[string]StreamPosition, len(raw))
	for topic, v := range raw {
		var p struct {
			Seq   *uint64 `json:"seq"`
			Epoch *string `json:"epoch"`
		}
		if err := json.Unmarshal(v, &p); err != nil || p.Seq == nil || p.Epoch == nil {
			return nil, fmt.Errorf("%w: bad position for %q: %s", ErrBadMessage, truncate(topic, 64), form)
		}
		out[topic] = StreamPosition{Seq: *p.Seq, Epoch: *p.Epoch}
	}
	return out, nil
}
