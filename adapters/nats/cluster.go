package nats

// The broker's switchboard.ClusterStore side, part one: membership. A joined node
// announces itself on NodesSubject every HeartbeatInterval and keeps a table of the other
// nodes it hears from; a node not heard from for NodeTTL is dead. Nothing is stored in
// NATS: the table lives in every node, and questions about presence and per-user
// connections are answered by the live nodes themselves (gather.go).

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard"
)

// ErrNotJoined is returned by the cluster methods (Presence, Nodes, AcquireUserConn…) of a
// broker whose node has not joined the cluster with Join, or has left it.
var ErrNotJoined = errors.New("switchboard/nats: node has not joined the cluster")

var _ switchboard.ClusterStore = (*Broker)(nil)

// cluster is the membership state of a Broker; its fields after the durations are guarded
// by mu.
type cluster struct {
	every, ttl, window time.Duration // Options.HeartbeatInterval, NodeTTL, GatherTimeout

	mu       sync.Mutex
	local    switchboard.LocalNode // nil until Join and after Leave
	id       string                // local.ID()
	instance string                // tells this process's heartbeats from those of another node with the same ID
	subs     []*nats.Subscription
	stop     chan struct{}                   // closed to end the heartbeat goroutine
	stopped  chan struct{}                   // closed by the heartbeat goroutine when it returns
	peers    map[string]switchboard.NodeInfo // the other live nodes; UpdatedAt is when this node last heard them
	missed   map[string]time.Time            // when a peer last failed to answer a question in time
	held     map[string]map[string]struct{}  // user → client IDs acquired on this node and not released
}

// beat is a heartbeat on NodesSubject or, with Bye, a node's goodbye.
type beat struct {
	Node     switchboard.NodeInfo `json:"node"`
	Instance string               `json:"instance"`
	Hello    bool                 `json:"hello,omitempty"` // the node's first heartbeat: the others answer with theirs
	Bye      bool                 `json:"bye,omitempty"`
}

// maxNodeID bounds the node IDs accepted from heartbeats, which come from the network.
const maxNodeID = 256

func clusterDefaults(o *Options) error {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 2 * time.Second
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = 3 * o.HeartbeatInterval
	}
	if o.NodeTTL <= o.HeartbeatInterval {
		return fmt.Errorf("switchboard/nats: NodeTTL (%v) must exceed HeartbeatInterval (%v)", o.NodeTTL, o.HeartbeatInterval)
	}
	if o.GatherTimeout <= 0 {
		o.GatherTimeout = 500 * time.Millisecond
	}
	return nil
}

func newCluster(o Options) cluster {
	return cluster{every: o.HeartbeatInterval, ttl: o.NodeTTL, window: o.GatherTimeout}
}

// NodesSubject is the subject of the nodes' heartbeats and goodbyes.
func (b *Broker) NodesSubject() string { return b.prefix + ".nodes" }

// Join implements switchboard.ClusterStore: it subscribes the node to the cluster's
// questions, announces it on NodesSubject and keeps announcing it every
// Options.HeartbeatInterval until Leave or Close.
func (b *Broker) Join(node switchboard.LocalNode) error {
	if node == nil || node.ID() == "" {
		return errors.New("switchboard/nats: Join needs a node with an ID")
	}
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done {
		return ErrClosed
	}
	c := &b.cl
	c.mu.Lock()
	if c.local != nil {
		c.mu.Unlock()
		return errors.New("switchboard/nats: node already joined")
	}
	subs, err := b.subscribeCluster()
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.local, c.id, c.instance, c.subs = node, node.ID(), rand.Text(), subs
	c.stop, c.stopped = make(chan struct{}), make(chan struct{})
	c.peers = make(map[string]switchboard.NodeInfo)
	c.missed = make(map[string]time.Time)
	c.held = make(map[string]map[string]struct{})
	go b.heartbeat(c.stop, c.stopped)
	c.mu.Unlock()

	b.sendBeat(true)
	return nil
}

// subscribeCluster subscribes to the heartbeats and to the two kinds of question. Each
// has its own subscription, so its own goroutine: a large presence answer does not hold
// up heartbeats or connection counts.
func (b *Broker) subscribeCluster() ([]*nats.Subscription, error) {
	handlers := []struct {
		subject string
		h       nats.MsgHandler
	}{
		{b.NodesSubject(), b.onBeat},
		{b.prefix + presenceToken + "*", b.onPresenceQuestion},
		{b.prefix + userConnsToken + "*", b.onUserConnsQuestion},
	}
	var subs []*nats.Subscription
	for _, s := range handlers {
		sub, err := b.nc.Subscribe(s.subject, s.h)
		if err != nil {
			unsubscribeAll(subs)
			return nil, fmt.Errorf("switchboard/nats: subscribe %s: %w", s.subject, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

func unsubscribeAll(subs []*nats.Subscription) {
	for _, s := range subs {
		_ = s.Unsubscribe() // fails only on a closed connection, where it is gone anyway
	}
}

// heartbeat announces the node every interval until stop is closed or the connection is.
func (b *Broker) heartbeat(stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(b.cl.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.sendBeat(false)
		case <-stop:
			return
		case <-b.closed:
			return
		}
	}
}

// sendBeat publishes the node's current counts on NodesSubject; hello asks the others to
// answer with theirs.
func (b *Broker) sendBeat(hello bool) {
	c := &b.cl
	c.mu.Lock()
	local := c.local
	c.mu.Unlock()
	if local == nil {
		return
	}
	// Info reads the Manager's registry: not under c.mu, which the Manager's own calls
	// (AcquireUserConn…) take.
	info := local.Info()
	info.ID = local.ID()
	info.UpdatedAt = time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local != local {
		return // left meanwhile: no heartbeat may follow the goodbye
	}
	data, err := json.Marshal(beat{Node: info, Instance: c.instance, Hello: hello})
	if err == nil {
		err = b.nc.Publish(b.NodesSubject(), data)
	}
	if err != nil {
		// While NATS is unreachable; the next tick tries again.
		b.log.Debug("switchboard/nats: heartbeat not sent", "err", err)
	}
}

// onBeat records another node's heartbeat or goodbye.
func (b *Broker) onBeat(m *nats.Msg) {
	var bt beat
	if err := json.Unmarshal(m.Data, &bt); err != nil || bt.Node.ID == "" || len(bt.Node.ID) > maxNodeID {
		b.log.Warn("switchboard/nats: dropping malformed heartbeat", "subject", m.Subject, "err", err)
		return
	}
	c := &b.cl
	c.mu.Lock()
	if c.local == nil {
		c.mu.Unlock()
		return
	}
	if bt.Node.ID == c.id {
		if bt.Instance != c.instance {
			b.log.Error("switchboard/nats: another node uses this node's ID: Config.NodeID must be unique in the cluster", "node", c.id)
		}
		c.mu.Unlock()
		return
	}
	if bt.Bye {
		delete(c.peers, bt.Node.ID)
		delete(c.missed, bt.Node.ID)
		c.mu.Unlock()
		return
	}
	bt.Node.UpdatedAt = time.Now() // this node's clock decides liveness, not the sender's
	c.peers[bt.Node.ID] = bt.Node
	c.mu.Unlock()
	if bt.Hello {
		b.sendBeat(false) // the newcomer learns of this node at once, not at its next tick
	}
}

// livePeers drops the nodes not heard from for NodeTTL and returns the IDs of the others.
// c.mu must be held.
func (c *cluster) livePeers(now time.Time) map[string]bool {
	live := make(map[string]bool, len(c.peers))
	for id, info := range c.peers {
		if now.Sub(info.UpdatedAt) > c.ttl {
			delete(c.peers, id)
			delete(c.missed, id)
			continue
		}
		live[id] = true
	}
	return live
}

// awaited returns the peers a question waits for: the live ones, except those that have
// not answered a question since their last heartbeat. A node that died is thus waited
// for once, not at every question until its TTL ends; its next heartbeat, if it is alive
// but was slow, puts it back. c.mu must be held.
func (c *cluster) awaited(now time.Time) map[string]bool {
	live := c.livePeers(now)
	for id := range live {
		if m, ok := c.missed[id]; ok && m.After(c.peers[id].UpdatedAt) {
			delete(live, id)
		}
	}
	return live
}

// missedQuestion records that the peers in ids did not answer a question in time.
func (c *cluster) missedQuestion(ids map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local == nil {
		return
	}
	now := time.Now()
	for id := range ids {
		if _, ok := c.peers[id]; ok {
			c.missed[id] = now
		}
	}
}

// Nodes implements switchboard.ClusterStore: this node, with its counts as of now, and
// every other node heard from within Options.NodeTTL, with the counts of its last
// heartbeat, sorted by ID. While the connection to NATS is down it fails with an error
// wrapping ErrNotConnected: the node cannot hear the others, so its table says nothing.
func (b *Broker) Nodes(ctx context.Context) ([]switchboard.NodeInfo, error) {
	if err := b.connected(); err != nil {
		return nil, err
	}
	c := &b.cl
	c.mu.Lock()
	local := c.local
	if local == nil {
		c.mu.Unlock()
		return nil, ErrNotJoined
	}
	live := c.livePeers(time.Now())
	out := make([]switchboard.NodeInfo, 0, len(live)+1)
	for id := range live {
		out = append(out, c.peers[id])
	}
	c.mu.Unlock()

	self := local.Info()
	self.ID = local.ID()
	self.UpdatedAt = time.Now()
	out = append(out, self)
	slices.SortFunc(out, func(x, y switchboard.NodeInfo) int { return strings.Compare(x.ID, y.ID) })
	return out, nil
}

// Leave implements switchboard.ClusterStore: it stops the heartbeats, stops answering the
// other nodes' questions, forgets the connections acquired here and announces the
// goodbye, so that the other nodes drop this one at once. Close does the same when Leave
// was not called.
func (b *Broker) Leave(ctx context.Context) error {
	if !b.leave() {
		return nil
	}
	if b.nc.Status() != nats.CONNECTED {
		return nil // no goodbye; the others drop the node after NodeTTL
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.subTime)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("switchboard/nats: leave: %w", err)
	}
	return nil
}

// leave undoes Join and reports whether the node had joined.
func (b *Broker) leave() bool {
	c := &b.cl
	c.mu.Lock()
	if c.local == nil {
		c.mu.Unlock()
		return false
	}
	bye, _ := json.Marshal(beat{Node: switchboard.NodeInfo{ID: c.id}, Instance: c.instance, Bye: true})
	if err := b.nc.Publish(b.NodesSubject(), bye); err != nil {
		b.log.Debug("switchboard/nats: goodbye not sent", "err", err)
	}
	stop, stopped, subs := c.stop, c.stopped, c.subs
	c.local, c.subs, c.peers, c.missed, c.held = nil, nil, nil, nil, nil
	c.mu.Unlock()

	close(stop)
	<-stopped
	unsubscribeAll(subs)
	return true
}
