// Package redis is a switchboard.Broker that connects the nodes of a cluster through Redis
// Pub/Sub, so that a publication on any node reaches the subscribers of every node.
//
// Each topic has a channel, "<prefix>:t:<topic>", which a node subscribes to only while it has
// local subscribers of the topic. Publications for everyone, for users and for one client go
// to a single channel, "<prefix>:node", that every node subscribes to. Channels are spread
// over several Pub/Sub connections (shards) by a hash of their name, so that one busy topic
// does not hold up the delivery of the others.
//
// Redis Pub/Sub delivers at most once: a node that is disconnected from Redis misses what is
// published in the meantime. Publish returns an error when Redis cannot be reached.
//
// A Broker is also a switchboard.ClusterStore, which the Manager uses for cluster-wide
// presence, Manager.Nodes and MaxConnsPerUser across nodes. Each node writes a heartbeat
// every ClusterOptions.HeartbeatInterval (2s by default) into the hash "<prefix>:hb"; its
// NodeInfo goes to "<prefix>:nodes", the subscribers of a topic to "<prefix>:p:<topic>"
// and the connections of a user to "<prefix>:uc:<user>". Readers skip the entries of nodes
// whose heartbeat is older than ClusterOptions.NodeTTL (6s by default) and delete them, so a
// node that dies without leaving (kill -9) disappears from Nodes, presence and user counts
// at most NodeTTL after its last heartbeat; a node that shuts down (Manager.Shutdown)
// disappears at once. Presence writes and releases are queued and pipelined by a
// background goroutine, in order; the user cap is checked atomically by a Lua script.
package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
)

// Options configures a Broker.
type Options struct {
	// URL locates the Redis server, e.g. "redis://127.0.0.1:6379/0" or
	// "rediss://user:pass@host:6380/0". Default "redis://127.0.0.1:6379/0".
	URL string
	// Prefix starts the name of every channel the broker uses; nodes of one cluster must
	// share it, and distinct clusters on one Redis must not. Default "switchboard".
	Prefix string
	// Shards is the number of Pub/Sub connections that the node's channels are spread over.
	// Default 4.
	Shards int
	// Logger receives connection problems and undecodable publications. Default slog.Default().
	Logger *slog.Logger
	// Cluster configures the broker's cluster state (live nodes, presence, per-user
	// connection counts; see cluster.go).
	Cluster ClusterOptions
}

// ErrClosed is returned by a Broker's methods after Close.
var ErrClosed = errors.New("switchboard/redis: broker closed")

const (
	// idlePing is how long a Pub/Sub connection may stay silent before the broker pings
	// it, so that a dead connection is noticed.
	idlePing = 15 * time.Second
	// subscribeTimeout bounds the wait for Redis to confirm a subscription.
	subscribeTimeout = 5 * time.Second
	// maxBatch is the largest number of publishes sent in one pipeline.
	maxBatch = 256
	// publishers is the number of goroutines sending pipelines of publishes.
	publishers = 2
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Broker is a switchboard.Broker over Redis Pub/Sub. Create it with New and hand it to
// switchboard.Config.Broker; the Manager starts it and closes it at Shutdown.
type Broker struct {
	opts    Options
	client  *goredis.Client
	nodeCh  string
	shards  []*shard
	pubq    chan *pubReq
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started atomic.Bool
	closed  atomic.Bool
	once    sync.Once
	pubOK   atomic.Bool
	deliver func(*switchboard.Publication)
	cl      *cluster // the switchboard.ClusterStore side
}

// shard is one Pub/Sub connection and its receive loop.
type shard struct {
	b       *Broker
	ps      *goredis.PubSub
	up      atomic.Bool
	mu      sync.Mutex
	waiters map[string][]chan struct{} // channel → subscribers waiting for Redis's confirmation
}

type pubReq struct {
	channel string
	data    []byte
	done    chan error // buffered: the publisher never blocks on an abandoned request
}

// New returns a broker for the Redis server at opts.URL. It does not connect yet: the
// connections are made by Start and by the first Publish.
func New(opts Options) (*Broker, error) {
	if opts.URL == "" {
		opts.URL = "redis://127.0.0.1:6379/0"
	}
	if opts.Prefix == "" {
		opts.Prefix = "switchboard"
	}
	if opts.Shards <= 0 {
		opts.Shards = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ropts, err := goredis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("switchboard/redis: %w", err)
	}
	// Fail fast when Redis is down: one dial attempt per command, and one retry, which
	// covers a pooled connection that a Redis restart has broken. A max_retries parameter
	// in the URL overrides the retry count.
	ropts.DialerRetries = 1
	if u, err := url.Parse(opts.URL); err == nil && !u.Query().Has("max_retries") {
		ropts.MaxRetries = 1
	}
	b := &Broker{
		opts:   opts,
		client: goredis.NewClient(ropts),
		nodeCh: opts.Prefix + ":node",
		pubq:   make(chan *pubReq, 4*maxBatch),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.cl = newCluster(b)
	b.pubOK.Store(true)
	for i := 0; i < opts.Shards; i++ {
		// Subscribe without channels only creates the PubSub; it connects on first use.
		b.shards = append(b.shards, &shard{b: b, ps: b.client.Subscribe(b.ctx), waiters: map[string][]chan struct{}{}})
	}
	return b, nil
}

// TopicChannel returns the Redis channel that carries the publications of topic.
func (b *Broker) TopicChannel(topic string) string { return b.opts.Prefix + ":t:" + topic }

// NodeChannel returns the Redis channel that carries publications for everyone, for users
// and for single clients; every node subscribes to it.
func (b *Broker) NodeChannel() string { return b.nodeCh }

func (b *Broker) shardOf(channel string) *shard {
	h := fnv.New32a()
	_, _ = h.Write([]byte(channel))
	return b.shards[h.Sum32()%uint32(len(b.shards))]
}

// Start implements switchboard.Broker: it starts the receive loops and the publishers and
// subscribes to the node channel. An error (Redis unreachable) is reported, but the broker
// keeps trying to connect, and subscribes when Redis comes back.
func (b *Broker) Start(deliver func(*switchboard.Publication)) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("switchboard/redis: broker already started")
	}
	b.deliver = deliver
	for _, s := range b.shards {
		b.wg.Add(1)
		go s.receive()
	}
	for i := 0; i < publishers; i++ {
		b.wg.Add(1)
		go b.publisher()
	}
	ctx, cancel := context.WithTimeout(b.ctx, subscribeTimeout)
	defer cancel()
	if err := b.shardOf(b.nodeCh).subscribe(ctx, b.nodeCh); err != nil {
		return fmt.Errorf("switchboard/redis: subscribe %s: %w (will retry)", b.nodeCh, err)
	}
	return nil
}

// Publish implements switchboard.Broker: it sends p to Redis and returns once Redis has
// accepted it, or with the error that prevented it.
func (b *Broker) Publish(ctx context.Context, p *switchboard.Publication) error {
	if b.closed.Load() || !b.started.Load() {
		return ErrClosed
	}
	data, err := switchboard.EncodePublication(p)
	if err != nil {
		return err
	}
	ch := b.nodeCh
	if p.Kind == switchboard.TargetTopic {
		ch = b.TopicChannel(p.Topic)
	}
	r := &pubReq{channel: ch, data: data, done: make(chan error, 1)}
	select {
	case b.pubq <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return ErrClosed
	}
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("switchboard/redis: publish: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return ErrClosed
	}
}

// publisher sends queued publishes to Redis, as many as are waiting (up to maxBatch) in one
// pipeline: concurrent publishers share round trips instead of each taking a connection.
func (b *Broker) publisher() {
	defer b.wg.Done()
	batch := make([]*pubReq, 0, maxBatch)
	for {
		select {
		case <-b.ctx.Done():
			return
		case r := <-b.pubq:
			batch = append(batch, r)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-b.pubq:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		pipe := b.client.Pipeline()
		cmds := make([]*goredis.IntCmd, len(batch))
		for i, r := range batch {
			cmds[i] = pipe.Publish(b.ctx, r.channel, r.data)
		}
		_, err := pipe.Exec(b.ctx)
		b.pubOK.Store(err == nil)
		if err != nil && b.ctx.Err() == nil {
			b.opts.Logger.Debug("switchboard/redis: publish failed", "n", len(batch), "err", err)
		}
		for i, r := range batch {
			r.done <- cmds[i].Err()
			batch[i] = nil
		}
		batch = batch[:0]
	}
}

// SubscribeTopic implements switchboard.Broker: it subscribes to the topic's channel and
// returns once Redis has confirmed the subscription, so that publications made after it
// returns reach this node.
func (b *Broker) SubscribeTopic(ctx context.Context, topic string) error {
	if b.closed.Load() || !b.started.Load() {
		return ErrClosed
	}
	ch := b.TopicChannel(topic)
	s := b.shardOf(ch)
	ctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	if err := s.subscribe(ctx, ch); err != nil {
		// Forget the channel, or the PubSub would subscribe to it again on reconnect.
		_ = s.ps.Unsubscribe(context.WithoutCancel(ctx), ch)
		return fmt.Errorf("switchboard/redis: subscribe %s: %w", ch, err)
	}
	return nil
}

// UnsubscribeTopic implements switchboard.Broker.
func (b *Broker) UnsubscribeTopic(ctx context.Context, topic string) error {
	if b.closed.Load() || !b.started.Load() {
		return ErrClosed
	}
	ch := b.TopicChannel(topic)
	// The channel is forgotten even when the command fails: a reconnect will not restore it.
	if err := b.shardOf(ch).ps.Unsubscribe(ctx, ch); err != nil {
		return fmt.Errorf("switchboard/redis: unsubscribe %s: %w", ch, err)
	}
	return nil
}

// Health pings Redis.
func (b *Broker) Health(ctx context.Context) error {
	if b.closed.Load() {
		return ErrClosed
	}
	return b.client.Ping(ctx).Err()
}

// Healthy reports whether, as far as the broker last saw, every Pub/Sub connection is up
// and the last publish succeeded. It does no I/O; Health does.
func (b *Broker) Healthy() bool {
	if b.closed.Load() || !b.started.Load() || !b.pubOK.Load() {
		return false
	}
	for _, s := range b.shards {
		if !s.up.Load() {
			return false
		}
	}
	return true
}

// Close implements switchboard.Broker: it stops the goroutines and closes the connections.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() {
		b.closed.Store(true)
		b.cancel()
		for _, s := range b.shards {
			_ = s.ps.Close() // unblocks the receive loop
		}
		b.wg.Wait()
		err = b.client.Close()
	})
	return err
}

// subscribe sends SUBSCRIBE and waits for Redis's confirmation, which the receive loop sees.
func (s *shard) subscribe(ctx context.Context, ch string) error {
	w := make(chan struct{})
	s.mu.Lock()
	s.waiters[ch] = append(s.waiters[ch], w)
	s.mu.Unlock()
	err := s.ps.Subscribe(ctx, ch)
	if err == nil {
		select {
		case <-w:
			return nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.mu.Lock()
	ws := s.waiters[ch]
	for i := range ws {
		if ws[i] == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(s.waiters, ch)
	} else {
		s.waiters[ch] = ws
	}
	s.mu.Unlock()
	return err
}

func (s *shard) confirmed(ch string) {
	s.mu.Lock()
	ws := s.waiters[ch]
	delete(s.waiters, ch)
	s.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// receive reads the shard's Pub/Sub connection and delivers what arrives. When the
// connection fails, go-redis reconnects on the next read and subscribes again to every
// channel the shard holds; receive waits between attempts with an exponential backoff.
func (s *shard) receive() {
	b := s.b
	defer b.wg.Done()
	backoff := minBackoff
	down := false
	connect := true // ping first, to connect (and resubscribe) without waiting for traffic
	for {
		var msg any
		var err error
		if connect {
			err = s.ps.Ping(b.ctx)
		}
		if err == nil {
			connect = false
			msg, err = s.ps.ReceiveTimeout(b.ctx, idlePing)
		}
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Idle: a ping makes a dead connection show itself on the next read.
				_ = s.ps.Ping(b.ctx)
				continue
			}
			if errors.Is(err, goredis.ErrClosed) {
				return
			}
			s.up.Store(false)
			if !down {
				down = true
				b.opts.Logger.Warn("switchboard/redis: pub/sub connection lost; reconnecting", "err", err)
			}
			select {
			case <-time.After(backoff):
			case <-b.ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			connect = true
			continue
		}
		s.up.Store(true)
		backoff = minBackoff
		if down {
			down = false
			b.opts.Logger.Info("switchboard/redis: pub/sub connection restored")
		}
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				s.confirmed(m.Channel)
			}
		case *goredis.Message:
			p, err := switchboard.DecodePublication([]byte(m.Payload))
			if err != nil {
				b.opts.Logger.Warn("switchboard/redis: undecodable publication", "channel", m.Channel, "err", err)
				continue
			}
			b.deliver(p)
		}
	}
}
