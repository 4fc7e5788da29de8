package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
)

// ClusterOptions configures what the Broker keeps as a switchboard.ClusterStore: live
// nodes, presence and per-user connection counts.
type ClusterOptions struct {
	// HeartbeatInterval is how often a node reports itself (its NodeInfo) to Redis.
	// Default 2s.
	HeartbeatInterval time.Duration
	// NodeTTL is how long a node counts as live after its last heartbeat. A node that
	// stops without leaving (a crash, kill -9, a network partition) disappears from
	// Nodes, Presence and the user counts at most NodeTTL after its last heartbeat.
	// Default 3 × HeartbeatInterval; at least 2 × HeartbeatInterval.
	NodeTTL time.Duration
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 2 * time.Second
	}
	if o.NodeTTL < 2*o.HeartbeatInterval {
		if o.NodeTTL != 0 {
			o.NodeTTL = 2 * o.HeartbeatInterval
		} else {
			o.NodeTTL = 3 * o.HeartbeatInterval
		}
	}
	return o
}

const (
	// keyTTL is how long a presence or user key lives without being written or refreshed.
	// Liveness is decided by the heartbeats, not by this: it only collects the keys that
	// dead nodes left behind and nobody read since. Live nodes refresh their keys every
	// keyTTL/3.
	keyTTL = 15 * time.Minute
	// maxWrites is the largest number of queued presence writes sent in one pipeline.
	maxWrites = 512
	// maxQueue bounds the queued writes while Redis is slow or down; past it the queue is
	// dropped and the node rebuilds its records from its registry once Redis answers.
	maxQueue = 1 << 16
	// rewriteTimeout bounds the rewrite of a node's whole state under a new session.
	rewriteTimeout = time.Minute
)

// The Redis data of the cluster (besides the Pub/Sub channels):
//
//	<prefix>:hb          hash  node ID → "<deadline ms> <session>" (Redis clock)
//	<prefix>:nodes       hash  node ID → NodeInfo as JSON
//	<prefix>:p:<topic>   hash  client ID → {"u": user, "n": node, "s": session}
//	<prefix>:uc:<user>   hash  client ID → "<session> <node>"
//
// A node's session is a random ID that changes whenever the node was, or may have been,
// considered dead (no heartbeat within NodeTTL, or writes lost while Redis was away): an
// entry is live only while its node's heartbeat is live *and* carries the entry's session.
// On a new session the node writes all its entries again from its registry, so entries
// of an older session (which readers may have partly deleted) never mix with current ones.

// heartbeatScript refreshes a node's heartbeat and info. It keeps the node's session when
// the heartbeat is still live with it, and otherwise starts the candidate session; it
// returns the session in force. It also deletes the records of nodes whose heartbeat has
// expired. KEYS: hb, nodes. ARGV: node, current session ("" for none), candidate session,
// TTL in ms, info JSON.
var heartbeatScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sess = ARGV[3]
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and ARGV[2] ~= '' then
  local d, s = string.match(old, '^(%d+) (%S+)$')
  if d and tonumber(d) >= now and s == ARGV[2] then sess = s end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d %s', now + tonumber(ARGV[4]), sess))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
local hb = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #hb, 2 do
  local d = string.match(hb[i + 1], '^(%d+) ')
  if d and tonumber(d) >= now then
    live[hb[i]] = true
  else
    redis.call('HDEL', KEYS[1], hb[i])
  end
end
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not live[id] then redis.call('HDEL', KEYS[2], id) end
end
return sess
`)

// acquireScript counts a client among a user's connections unless the user already has
// max live ones (max < 0: no cap), deleting the entries of dead nodes on the way. A
// client already counted stays counted. KEYS: hb, uc:<user>. ARGV: client, "<session>
// <node>", max, key TTL in ms. Returns 1 when counted, 0 when refused.
var acquireScript = goredis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return 1
end
local max = tonumber(ARGV[3])
if max >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local live = {}
  local hb = redis.call('HGETALL', KEYS[1])
  for i = 1, #hb, 2 do
    local d, s = string.match(hb[i + 1], '^(%d+) (%S+)$')
    if d and tonumber(d) >= now then live[hb[i]] = s end
  end
  local entries = redis.call('HGETALL', KEYS[2])
  local n = 0
  for i = 1, #entries, 2 do
    local s, node = string.match(entries[i + 1], '^(%S+) (.*)$')
    if s and live[node] == s then
      n = n + 1
    else
      redis.call('HDEL', KEYS[2], entries[i])
    end
  end
  if n >= max then return 0 end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`)

// reapScript deletes hash fields that still hold the values a reader found dead, and
// leaves alone those rewritten meanwhile. KEYS: the hash. ARGV: field, value, field, value…
var reapScript = goredis.NewScript(`
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
`)

// leaveScript deletes a node's heartbeat and info, unless another process has taken the
// node ID over meanwhile (another session). KEYS: hb, nodes. ARGV: node, session.
var leaveScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.match(v, '^%d+ (%S+)$') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

// opKind is what a queued write does.
type opKind uint8

const (
	opAddPresence opKind = iota + 1
	opRemovePresence
	opReleaseUser
)

// op is one queued write. Writes run in queue order on one goroutine, so a client's
// add and remove never swap.
type op struct {
	kind   opKind
	key    string // the hash
	client string // the field
	user   string // with opAddPresence
}

// presenceValue is the value of a presence entry.
type presenceValue struct {
	User    string `json:"u,omitempty"`
	Node    string `json:"n"`
	Session string `json:"s"`
}

// cluster is the Broker's switchboard.ClusterStore side.
type cluster struct {
	b     *Broker
	opts  ClusterOptions
	hbKey string
	nKey  string

	node   switchboard.LocalNode // set by Join
	joined atomic.Bool
	left   atomic.Bool
	quit   chan struct{} // closed by Leave: the write loop stops
	done   chan struct{} // closed when the write loop has stopped

	// sessMu orders AcquireUserConn (read) against a change of session (write), so that
	// no acquisition made under the old session escapes the rewrite under the new one.
	sessMu  sync.RWMutex
	session string // "" until the first heartbeat succeeds

	lastBeat time.Time // of the last successful heartbeat; owned by the loop (and Join)

	mu     sync.Mutex
	queue  []op
	resync bool              // writes were lost: start a new session at the next heartbeat
	users  map[string]string // client ID → user, for this node's counted connections
	wake   chan struct{}     // a write was queued
	failed bool              // the last write or heartbeat failed (to log once per outage)
}

func newCluster(b *Broker) *cluster {
	return &cluster{
		b:     b,
		opts:  b.opts.Cluster.withDefaults(),
		hbKey: b.opts.Prefix + ":hb",
		nKey:  b.opts.Prefix + ":nodes",
		users: map[string]string{},
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

func (c *cluster) presenceKey(topic string) string { return c.b.opts.Prefix + ":p:" + topic }
func (c *cluster) userKey(user string) string      { return c.b.opts.Prefix + ":uc:" + user }

// Join implements switchboard.ClusterStore: it writes the node's first heartbeat and
// starts the loop that sends the heartbeats and the queued writes. When Redis cannot be
// reached the error is returned, and the loop keeps trying.
func (b *Broker) Join(node switchboard.LocalNode) error {
	c := b.cl
	if b.closed.Load() || c.left.Load() {
		return ErrClosed
	}
	if !c.joined.CompareAndSwap(false, true) {
		return errors.New("switchboard/redis: node already joined")
	}
	c.node = node
	ctx, cancel := context.WithTimeout(b.ctx, subscribeTimeout)
	err := c.heartbeat(ctx)
	cancel()
	b.wg.Add(1)
	go c.loop()
	if err != nil {
		return fmt.Errorf("switchboard/redis: join: %w (will retry)", err)
	}
	return nil
}

// Leave implements switchboard.ClusterStore: it stops the heartbeats, sends the writes
// still queued, and deletes the node's heartbeat, so that other nodes drop it, with its
// presence and user counts, at once.
func (b *Broker) Leave(ctx context.Context) error {
	c := b.cl
	if !c.joined.Load() || !c.left.CompareAndSwap(false, true) || b.closed.Load() {
		return ErrClosed
	}
	close(c.quit)
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.flush(ctx)
	c.mu.Lock()
	pipe := b.client.Pipeline()
	for client, user := range c.users { // normally none left: the Manager released them
		pipe.HDel(ctx, c.userKey(user), client)
	}
	c.users = map[string]string{}
	c.mu.Unlock()
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("switchboard/redis: leave: %w", err)
		}
	}
	err := leaveScript.Run(ctx, b.client, []string{c.hbKey, c.nKey}, c.node.ID(), c.currentSession()).Err()
	if err != nil {
		return fmt.Errorf("switchboard/redis: leave: %w", err)
	}
	return nil
}

// loop sends the heartbeats, the queued writes and the key refreshes, until Leave or
// Close. Stopped by Close alone, it leaves everything in Redis as a crashed node would.
func (c *cluster) loop() {
	defer c.b.wg.Done()
	defer close(c.done)
	beat := time.NewTicker(c.opts.HeartbeatInterval)
	defer beat.Stop()
	refresh := time.NewTicker(keyTTL / 3)
	defer refresh.Stop()
	for {
		select {
		case <-c.b.ctx.Done():
			return
		case <-c.quit:
			return
		case <-beat.C:
			ctx, cancel := context.WithTimeout(c.b.ctx, c.opts.HeartbeatInterval)
			err := c.heartbeat(ctx)
			cancel()
			c.report("heartbeat", err)
		case <-refresh.C:
			c.refreshKeys()
		case <-c.wake:
			c.flush(c.b.ctx)
		}
	}
}

// report logs the first failure of an outage and the recovery.
func (c *cluster) report(what string, err error) {
	c.mu.Lock()
	was := c.failed
	c.failed = err != nil
	c.mu.Unlock()
	switch {
	case err != nil && !was && c.b.ctx.Err() == nil:
		c.b.opts.Logger.Warn("switchboard/redis: cluster "+what+" failed; presence and user counts of this node are stale until Redis answers", "err", err)
	case err == nil && was:
		c.b.opts.Logger.Info("switchboard/redis: cluster state restored")
	}
}

// heartbeat reports the node to Redis. When Redis answers with a new session (the node
// was taken for dead, or its writes were lost), it writes the node's state again.
func (c *cluster) heartbeat(ctx context.Context) error {
	c.mu.Lock()
	force := c.resync
	c.resync = false
	c.mu.Unlock()
	cur := c.currentSession()
	if force {
		cur = "" // not live: a new session
	}
	sess, err := c.beat(ctx, cur)
	if err == nil && sess != cur {
		// A rewrite may take longer than a heartbeat's deadline: it has its own.
		rctx, cancel := context.WithTimeout(c.b.ctx, rewriteTimeout)
		err = c.rewrite(rctx, cur, sess)
		cancel()
	}
	if err != nil && (force || cur != c.currentSession()) {
		c.mu.Lock()
		c.resync = true // try again with yet another session
		c.mu.Unlock()
	}
	return err
}

// beat runs the heartbeat script with session cur and returns the session in force.
func (c *cluster) beat(ctx context.Context, cur string) (string, error) {
	info, err := json.Marshal(c.node.Info())
	if err != nil {
		return "", err
	}
	ttl := strconv.FormatInt(c.opts.NodeTTL.Milliseconds(), 10)
	sess, err := heartbeatScript.Run(ctx, c.b.client, []string{c.hbKey, c.nKey},
		c.node.ID(), cur, newSession(), ttl, info).Text()
	if err == nil {
		c.lastBeat = time.Now()
	}
	return sess, err
}

func (c *cluster) currentSession() string {
	c.sessMu.RLock()
	defer c.sessMu.RUnlock()
	return c.session
}

// errSessionLost ends a rewrite during which the node was taken for dead again.
var errSessionLost = errors.New("switchboard/redis: node taken for dead during its rewrite")

// rewrite starts session sess and writes this node's user counts and presence again
// under it, from the node's own records. Queued writes run after it (same goroutine), so
// the result is the node's current state.
func (c *cluster) rewrite(ctx context.Context, old, sess string) error {
	if old != "" {
		c.b.opts.Logger.Warn("switchboard/redis: this node was taken for dead (heartbeats missed, writes lost, or its node ID is in use by another process); registering its state again",
			"node", c.node.ID())
	}
	c.sessMu.Lock()
	c.session = sess
	c.mu.Lock()
	users := make(map[string]string, len(c.users))
	for client, user := range c.users {
		users[client] = user
	}
	c.mu.Unlock()
	c.sessMu.Unlock()

	id := c.node.ID()
	w := c.newBatchWriter(ctx)
	// A large node's rewrite spans several heartbeats: keep beating between pipelines, or
	// the node would be taken for dead again before it is done.
	w.between = func() error {
		if time.Since(c.lastBeat) < c.opts.HeartbeatInterval {
			return nil
		}
		got, err := c.beat(ctx, sess)
		if err == nil && got != sess {
			err = errSessionLost
		}
		return err
	}
	ucValue := sess + " " + id
	for client, user := range users {
		key := c.userKey(user)
		w.pipe.HSet(ctx, key, client, ucValue)
		w.pipe.PExpire(ctx, key, keyTTL)
		if err := w.step(); err != nil {
			return err
		}
	}
	for _, topic := range c.node.Topics() {
		key := c.presenceKey(topic)
		for _, p := range c.node.Presence(topic) {
			v, _ := json.Marshal(presenceValue{User: p.UserID, Node: id, Session: sess})
			w.pipe.HSet(ctx, key, p.ClientID, v)
			if err := w.step(); err != nil {
				return err
			}
		}
		w.pipe.PExpire(ctx, key, keyTTL)
		if err := w.step(); err != nil {
			return err
		}
	}
	return w.finish()
}

// batchWriter sends commands in pipelines of a bounded size.
type batchWriter struct {
	ctx     context.Context
	c       *cluster
	pipe    goredis.Pipeliner
	between func() error // if set, called after each pipeline sent
}

func (c *cluster) newBatchWriter(ctx context.Context) *batchWriter {
	return &batchWriter{ctx: ctx, c: c, pipe: c.b.client.Pipeline()}
}

// step sends the pipeline once it is large enough.
func (w *batchWriter) step() error {
	if w.pipe.Len() < 2*maxWrites {
		return nil
	}
	if err := w.finish(); err != nil {
		return err
	}
	if w.between != nil {
		return w.between()
	}
	return nil
}

func (w *batchWriter) finish() error {
	if w.pipe.Len() == 0 {
		return nil
	}
	_, err := w.pipe.Exec(w.ctx)
	return err
}

// refreshKeys extends the life of the keys this node has entries in.
func (c *cluster) refreshKeys() {
	ctx, cancel := context.WithTimeout(c.b.ctx, keyTTL/3)
	defer cancel()
	c.mu.Lock()
	users := make([]string, 0, len(c.users))
	for _, u := range c.users {
		users = append(users, u)
	}
	c.mu.Unlock()
	w := c.newBatchWriter(ctx)
	var err error
	for _, u := range users {
		w.pipe.PExpire(ctx, c.userKey(u), keyTTL)
		if err = w.step(); err != nil {
			break
		}
	}
	for _, t := range c.node.Topics() {
		if err != nil {
			break
		}
		w.pipe.PExpire(ctx, c.presenceKey(t), keyTTL)
		err = w.step()
	}
	if err == nil {
		err = w.finish()
	}
	if err != nil && c.b.ctx.Err() == nil {
		c.b.opts.Logger.Debug("switchboard/redis: refreshing cluster keys failed", "err", err)
	}
}

// errNotJoined is returned by the methods that write for this node before Join.
var errNotJoined = errors.New("switchboard/redis: the node has not joined the cluster (Join)")

// usable reports why the node cannot write, if it cannot.
func (c *cluster) usable() error {
	switch {
	case c.b.closed.Load() || c.left.Load():
		return ErrClosed
	case !c.joined.Load():
		return errNotJoined
	}
	return nil
}

// enqueue queues a write for the loop.
func (c *cluster) enqueue(o op) error {
	if err := c.usable(); err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.queue) >= maxQueue {
		// Redis has not kept up for a long while: drop the backlog and write the whole
		// state again once it answers.
		c.queue = nil
		c.resync = true
	}
	c.queue = append(c.queue, o)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// flush sends the queued writes, in order, in pipelines of up to maxWrites. When a
// pipeline fails, what is left is dropped and the node starts a new session at the next
// heartbeat, writing its state again.
func (c *cluster) flush(ctx context.Context) {
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxWrites)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		c.mu.Unlock()
		if n == 0 {
			return
		}
		err := c.write(ctx, batch)
		c.report("write", err)
		if err != nil {
			c.mu.Lock()
			c.queue = nil
			c.resync = true
			c.mu.Unlock()
			return
		}
	}
}

func (c *cluster) write(ctx context.Context, batch []op) error {
	sess := c.currentSession()
	id := c.node.ID()
	pipe := c.b.client.Pipeline()
	for _, o := range batch {
		switch o.kind {
		case opAddPresence:
			v, _ := json.Marshal(presenceValue{User: o.user, Node: id, Session: sess})
			pipe.HSet(ctx, o.key, o.client, v)
			pipe.PExpire(ctx, o.key, keyTTL)
		case opRemovePresence, opReleaseUser:
			pipe.HDel(ctx, o.key, o.client)
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// AddPresence implements switchboard.ClusterStore. The write is queued: it reaches Redis
// within a round trip or so, after the writes queued before it.
func (b *Broker) AddPresence(ctx context.Context, topic string, p switchboard.PresenceInfo) error {
	return b.cl.enqueue(op{kind: opAddPresence, key: b.cl.presenceKey(topic), client: p.ClientID, user: p.UserID})
}

// RemovePresence implements switchboard.ClusterStore; the write is queued like AddPresence's.
func (b *Broker) RemovePresence(ctx context.Context, topic, clientID string) error {
	return b.cl.enqueue(op{kind: opRemovePresence, key: b.cl.presenceKey(topic), client: clientID})
}

// liveNodes is a snapshot of the heartbeats: node → session, for the live nodes.
type liveNodes map[string]string

// readLive parses the heartbeat hash at Redis time now (ms).
func readLive(hb map[string]string, now int64) liveNodes {
	live := liveNodes{}
	for node, v := range hb {
		d, sess, ok := strings.Cut(v, " ")
		deadline, err := strconv.ParseInt(d, 10, 64)
		if ok && err == nil && deadline >= now {
			live[node] = sess
		}
	}
	return live
}

// snapshot reads, in one transaction, Redis's clock, the heartbeats and the hash at key.
func (c *cluster) snapshot(ctx context.Context, key string) (liveNodes, map[string]string, error) {
	var now *goredis.TimeCmd
	var hb, entries *goredis.MapStringStringCmd
	_, err := c.b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		now = p.Time(ctx)
		hb = p.HGetAll(ctx, c.hbKey)
		entries = p.HGetAll(ctx, key)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return readLive(hb.Val(), now.Val().UnixMilli()), entries.Val(), nil
}

// reap deletes the entries found dead, unless they were rewritten meanwhile. It is best
// effort: what it misses, the next reader deletes.
func (c *cluster) reap(ctx context.Context, key string, dead []any) {
	if len(dead) > 0 {
		_ = reapScript.Run(ctx, c.b.client, []string{key}, dead...).Err()
	}
}

// Presence implements switchboard.ClusterStore: the subscribers of topic on the live
// nodes. Entries of dead nodes are left out, and deleted.
func (b *Broker) Presence(ctx context.Context, topic string) ([]switchboard.PresenceInfo, error) {
	c := b.cl
	if b.closed.Load() {
		return nil, ErrClosed
	}
	key := c.presenceKey(topic)
	live, entries, err := c.snapshot(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("switchboard/redis: presence: %w", err)
	}
	out := make([]switchboard.PresenceInfo, 0, len(entries))
	var dead []any
	for client, v := range entries {
		var p presenceValue
		if json.Unmarshal([]byte(v), &p) != nil || live[p.Node] != p.Session || p.Session == "" {
			dead = append(dead, client, v)
			continue
		}
		out = append(out, switchboard.PresenceInfo{ClientID: client, UserID: p.User, Node: p.Node})
	}
	c.reap(ctx, key, dead)
	return out, nil
}

// AcquireUserConn implements switchboard.ClusterStore, atomically in Redis: the user's
// live connections are counted (entries of dead nodes deleted on the way) and clientID
// is added when there are fewer than max.
func (b *Broker) AcquireUserConn(ctx context.Context, user, clientID string, max int) (bool, error) {
	c := b.cl
	if err := c.usable(); err != nil {
		return false, err
	}
	c.sessMu.RLock()
	defer c.sessMu.RUnlock()
	n, err := acquireScript.Run(ctx, b.client, []string{c.hbKey, c.userKey(user)},
		clientID, c.session+" "+c.node.ID(), max, keyTTL.Milliseconds()).Int()
	if err == nil && n == 0 {
		return false, nil
	}
	// Counted, or perhaps counted (an error): the Manager admits the connection either
	// way and releases it at the end, so it belongs to the node's state to rewrite.
	c.mu.Lock()
	c.users[clientID] = user
	c.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("switchboard/redis: acquire: %w", err)
	}
	return true, nil
}

// ReleaseUserConn implements switchboard.ClusterStore; the write is queued like
// AddPresence's.
func (b *Broker) ReleaseUserConn(ctx context.Context, user, clientID string) error {
	c := b.cl
	c.mu.Lock()
	delete(c.users, clientID)
	c.mu.Unlock()
	return c.enqueue(op{kind: opReleaseUser, key: c.userKey(user), client: clientID})
}

// UserConns implements switchboard.ClusterStore: the user's connections on live nodes.
func (b *Broker) UserConns(ctx context.Context, user string) (int, error) {
	c := b.cl
	if b.closed.Load() {
		return 0, ErrClosed
	}
	key := c.userKey(user)
	live, entries, err := c.snapshot(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("switchboard/redis: user connections: %w", err)
	}
	n := 0
	var dead []any
	for client, v := range entries {
		sess, node, ok := strings.Cut(v, " ")
		if ok && sess != "" && live[node] == sess {
			n++
		} else {
			dead = append(dead, client, v)
		}
	}
	c.reap(ctx, key, dead)
	return n, nil
}

// Nodes implements switchboard.ClusterStore: the live nodes, by ID.
func (b *Broker) Nodes(ctx context.Context) ([]switchboard.NodeInfo, error) {
	c := b.cl
	if b.closed.Load() {
		return nil, ErrClosed
	}
	live, infos, err := c.snapshot(ctx, c.nKey)
	if err != nil {
		return nil, fmt.Errorf("switchboard/redis: nodes: %w", err)
	}
	out := make([]switchboard.NodeInfo, 0, len(live))
	for id := range live {
		var n switchboard.NodeInfo
		if v, ok := infos[id]; ok && json.Unmarshal([]byte(v), &n) == nil {
			n.ID = id
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// newSession returns a random session ID: 16 hex digits.
func newSession() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ switchboard.ClusterStore = (*Broker)(nil)
