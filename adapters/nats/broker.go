// Package nats is a switchboard.Broker on core NATS, for running several Switchboard nodes
// behind a load balancer: a publication made on any node reaches the recipients on every node.
//
// # Subjects
//
// With the default prefix "switchboard" the broker uses these subjects:
//
//	switchboard.node               publications to all connections, to users and to one
//	                               client; every node subscribes to it when its Manager starts
//	switchboard.t.<topic>          publications to a topic; a node subscribes to it only
//	                               while it has at least one local subscriber of the topic
//	switchboard.nodes              the nodes' heartbeats and goodbyes (see Cluster state)
//	switchboard.presence.<topic>   a node asking the others for the subscribers of a topic
//	switchboard.userconns.<user>   a node asking the others for a user's connection count
//
// <topic> (and <user>) is the name in unpadded base64url (RFC 4648 §5, alphabet A-Z a-z 0-9 - _),
// because topic names may contain characters with a meaning in NATS subjects ('.' separates
// tokens, '*' and '>' are wildcards, whitespace ends a subject). The topic "user:42:orders"
// travels on "switchboard.t.dXNlcjo0MjpvcmRlcnM"; Broker.TopicSubject computes it. Message
// bodies are switchboard.EncodePublication's JSON. In the two question subjects a name
// longer than 192 bytes is replaced by "~" and the base64url of its SHA-256, which keeps
// the subject within the server's max_control_line; the question's body has the name.
//
// # Guarantees
//
// Core NATS delivers at most once: a message is not stored, acknowledged or retried. What
// a node misses while it is disconnected from the NATS server is lost for its clients.
// The broker does not let the NATS client queue publications while it is disconnected
// (the reconnect buffer is disabled): Publish returns an error wrapping ErrNotConnected
// instead, so a publish made while NATS is unreachable is reported to the caller rather
// than dropped silently or delivered minutes late. A publication accepted by Publish has
// been written to the client's socket buffer; if the connection dies before the server
// reads it (a window bounded by the client's write and ping timeouts), it is lost.
//
// The NATS client reconnects on its own, forever by default, with jittered waits, and
// subscribes again to every subject the node had; the broker logs the disconnection and
// the reconnection. Health and Healthy report the connection's state for readiness probes.
//
// # Cluster state
//
// Broker also implements switchboard.ClusterStore, so a Manager on it has cluster-wide
// presence, Manager.Nodes and Config.MaxConnsPerUser. Nothing is stored in NATS; each
// node keeps its own state and the others ask for it:
//
//   - Nodes. Once joined (the Manager calls Join), a node publishes its counts on
//     <prefix>.nodes every Options.HeartbeatInterval (2 s) and records the others'. A node
//     not heard from for Options.NodeTTL (3 intervals) is dropped; Leave (and Close)
//     publish a goodbye that drops it at once. A node that hears a newcomer answers with
//     a heartbeat of its own, so nodes learn of one another within a round trip.
//   - Presence and connection counts are scatter-gather: the asking node publishes a
//     question, every other joined node answers from its own registry, and the asker
//     gathers answers until every node it knows has answered or Options.GatherTimeout
//     (500 ms; a shorter context deadline bounds it further) has passed. A node that
//     has died does not answer, so its clients are missing from presence at once; the
//     asker waits the window for it once, not again until the node sends a heartbeat.
//     A presence answer is split into messages of at most 256 KiB (or half the server's
//     max_payload), so a topic's size is not limited by NATS's message size.
//     AddPresence and RemovePresence have nothing to record and return nil.
//   - AcquireUserConn records the connection on its node before asking the others, and
//     each node answers with the connections it has acquired as well as those in its
//     registry. Of two logins racing for the last place on two nodes, at least one sees
//     the other: the cap is not exceeded (both may be refused). It can be exceeded only
//     when a live node fails to answer within the window.
//
// While the connection to NATS is down, Nodes, Presence, UserConns and AcquireUserConn
// fail with an error wrapping ErrNotConnected (the Manager then admits connections under
// the node's own cap), and the other nodes drop this one after NodeTTL.
package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboardrt/switchboard"
)

// ErrNotConnected is wrapped by the errors of Publish and Health while the broker has no
// connection to a NATS server.
var ErrNotConnected = errors.New("switchboard/nats: not connected to NATS")

// ErrClosed is returned by the broker's methods after Close.
var ErrClosed = errors.New("switchboard/nats: broker closed")

// Options configures a Broker.
type Options struct {
	// URL is the NATS server URL, or a comma-separated list of them.
	// Default "nats://127.0.0.1:4222".
	URL string
	// Prefix starts every subject the broker uses; nodes that must reach one another use
	// the same prefix, and separate applications sharing a NATS server use different ones.
	// It is one or more dot-separated tokens without wildcards or whitespace.
	// Default "switchboard".
	Prefix string
	// Logger receives the connection's events (disconnect, reconnect, slow consumer,
	// undecodable messages). Default slog.Default().
	Logger *slog.Logger
	// NATSOptions are applied to the NATS connection after the broker's defaults
	// (Name "switchboard", MaxReconnects(-1), ReconnectWait(1s), ReconnectJitter(500ms, 1s))
	// and may override them: credentials, TLS, timeouts, reconnect policy. Handlers set
	// here (disconnect, reconnect, closed, error) are still called, after the broker's own.
	// The reconnect buffer is always disabled (see the package documentation).
	NATSOptions []nats.Option
	// SubscribeTimeout bounds the round trip SubscribeTopic makes to be sure the server
	// knows of a new subscription when a context without a deadline is given. Default 5s.
	SubscribeTimeout time.Duration
	// DrainTimeout bounds Close, which lets messages already received reach the node
	// before disconnecting. Default 5s.
	DrainTimeout time.Duration

	// HeartbeatInterval is how often a node that has joined the cluster (Join) announces
	// itself on "<prefix>.nodes". Default 2s.
	HeartbeatInterval time.Duration
	// NodeTTL is how long a node stays in Nodes without a heartbeat: a node that stopped
	// without Leave is dropped after it. It must exceed HeartbeatInterval.
	// Default 3 × HeartbeatInterval.
	NodeTTL time.Duration
	// GatherTimeout bounds how long Presence, UserConns and AcquireUserConn wait for the
	// other nodes' answers (a shorter context deadline bounds it further). Default 500ms.
	GatherTimeout time.Duration
}

// Broker is a switchboard.Broker on core NATS. Create it with New and hand it to
// switchboard.Config.Broker; the Manager starts and closes it. It is safe for concurrent use.
type Broker struct {
	nc      *nats.Conn
	prefix  string
	log     *slog.Logger
	subTime time.Duration
	closed  chan struct{} // closed by the NATS client's closed handler

	dmu     sync.RWMutex // held for reading while delivering; Close takes it to stop delivery
	deliver func(*switchboard.Publication)

	mu     sync.Mutex
	node   *nats.Subscription
	topics map[string]*topicSub
	done   bool

	cl cluster // the ClusterStore side, in cluster.go
}

type topicSub struct {
	sub  *nats.Subscription
	refs int
}

var _ switchboard.Broker = (*Broker)(nil)

// New connects to NATS and returns a broker. It fails when the options are invalid or
// no server can be reached (unless nats.RetryOnFailedConnect(true) is among NATSOptions).
func New(opts Options) (*Broker, error) {
	if opts.URL == "" {
		opts.URL = "nats://127.0.0.1:4222"
	}
	if opts.Prefix == "" {
		opts.Prefix = "switchboard"
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SubscribeTimeout <= 0 {
		opts.SubscribeTimeout = 5 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if err := clusterDefaults(&opts); err != nil {
		return nil, err
	}
	b := &Broker{
		prefix:  opts.Prefix,
		log:     opts.Logger.With("broker", "nats"),
		subTime: opts.SubscribeTimeout,
		closed:  make(chan struct{}),
		topics:  make(map[string]*topicSub),
		cl:      newCluster(opts),
	}

	no := nats.GetDefaultOptions()
	no.Url = opts.URL
	defaults := []nats.Option{
		nats.Name("switchboard"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.DrainTimeout(opts.DrainTimeout),
		// The client's own default pings every 2 minutes: a connection that dies silently (a
		// partition without RST) would take publications for minutes without an error. As
		// the Redis broker does for its idle Pub/Sub connections, ping every 15 s.
		nats.PingInterval(15 * time.Second),
		nats.MaxPingsOutstanding(2),
	}
	for _, o := range append(defaults, opts.NATSOptions...) {
		if o == nil {
			continue
		}
		if err := o(&no); err != nil {
			return nil, fmt.Errorf("switchboard/nats: option: %w", err)
		}
	}
	// Publishing while disconnected must fail, not wait in a buffer.
	no.ReconnectBufSize = -1

	userDisc, userRecon, userClosed, userErr := no.DisconnectedErrCB, no.ReconnectedCB, no.ClosedCB, no.AsyncErrorCB
	no.DisconnectedErrCB = func(nc *nats.Conn, err error) {
		if b.closing() { // Close drains and disconnects: expected, not worth a warning
			b.log.Debug("switchboard/nats: disconnected from NATS on Close")
		} else {
			b.log.Warn("switchboard/nats: disconnected from NATS", "err", err)
		}
		if userDisc != nil {
			userDisc(nc, err)
		}
	}
	no.ReconnectedCB = func(nc *nats.Conn) {
		b.log.Info("switchboard/nats: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		if userRecon != nil {
			userRecon(nc)
		}
	}
	no.ClosedCB = func(nc *nats.Conn) {
		close(b.closed)
		if userClosed != nil {
			userClosed(nc)
		}
	}
	no.AsyncErrorCB = func(nc *nats.Conn, sub *nats.Subscription, err error) {
		subj := ""
		if sub != nil {
			subj = sub.Subject
		}
		b.log.Error("switchboard/nats: NATS error", "subject", subj, "err", err)
		if userErr != nil {
			userErr(nc, sub, err)
		}
	}

	nc, err := no.Connect()
	if err != nil {
		return nil, fmt.Errorf("switchboard/nats: connect %s: %w", opts.URL, err)
	}
	b.nc = nc
	return b, nil
}

func checkPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\f\v*>") {
			return fmt.Errorf("switchboard/nats: invalid subject prefix %q", p)
		}
	}
	return nil
}

// NodeSubject is the subject of publications to all connections, to users and to a client.
func (b *Broker) NodeSubject() string { return b.prefix + ".node" }

// TopicSubject is the subject that carries the publications of topic.
func (b *Broker) TopicSubject(topic string) string {
	return b.prefix + ".t." + subjectToken(topic)
}

// subjectToken encodes s (a topic, a user ID) as one subject token: see the package
// documentation.
func subjectToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Conn returns the broker's NATS connection, for metrics and diagnostics.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Start implements switchboard.Broker: it subscribes the node to the node subject.
func (b *Broker) Start(deliver func(*switchboard.Publication)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return ErrClosed
	}
	if b.node != nil {
		return errors.New("switchboard/nats: broker already started")
	}
	sub, err := b.nc.Subscribe(b.NodeSubject(), b.receive)
	if err != nil {
		return fmt.Errorf("switchboard/nats: subscribe %s: %w", b.NodeSubject(), err)
	}
	b.node = sub
	b.dmu.Lock()
	b.deliver = deliver
	b.dmu.Unlock()
	b.flush(context.Background())
	return nil
}

// receive is the NATS message handler of every subscription.
func (b *Broker) receive(m *nats.Msg) {
	p, err := switchboard.DecodePublication(m.Data)
	if err != nil {
		b.log.Warn("switchboard/nats: dropping undecodable publication", "subject", m.Subject, "err", err)
		return
	}
	b.dmu.RLock()
	defer b.dmu.RUnlock()
	if b.deliver != nil {
		b.deliver(p)
	}
}

// Publish implements switchboard.Broker. It fails with an error wrapping ErrNotConnected
// while the connection to NATS is down; success means the publication was handed to the
// connection, not that any node received it (core NATS is at-most-once).
func (b *Broker) Publish(ctx context.Context, p *switchboard.Publication) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := switchboard.EncodePublication(p)
	if err != nil {
		return err
	}
	subject := b.NodeSubject()
	if p.Kind == switchboard.TargetTopic {
		subject = b.TopicSubject(p.Topic)
	}
	switch st := b.nc.Status(); st {
	case nats.CONNECTED:
	case nats.CLOSED, nats.DRAINING_SUBS, nats.DRAINING_PUBS:
		return ErrClosed
	default:
		return fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	if err := b.nc.Publish(subject, data); err != nil {
		if errors.Is(err, nats.ErrReconnectBufExceeded) {
			return fmt.Errorf("%w: %v", ErrNotConnected, err)
		}
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) {
			return ErrClosed
		}
		return fmt.Errorf("switchboard/nats: publish: %w", err)
	}
	return nil
}

// SubscribeTopic implements switchboard.Broker. It subscribes the node to the topic's
// subject and, when connected, waits (up to ctx's deadline or Options.SubscribeTimeout)
// for the server to have processed the subscription, so that what is published after it
// returns reaches the node. While NATS is unreachable the subscription is recorded and made
// on reconnection.
//
// Calls are counted: the subject is unsubscribed when UnsubscribeTopic has been called as
// often as SubscribeTopic (an UnsubscribeTopic for a topic not subscribed is ignored).
func (b *Broker) SubscribeTopic(ctx context.Context, topic string) error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return ErrClosed
	}
	if ts := b.topics[topic]; ts != nil {
		ts.refs++
		b.mu.Unlock()
		return nil
	}
	sub, err := b.nc.Subscribe(b.TopicSubject(topic), b.receive)
	if err != nil {
		b.mu.Unlock()
		return fmt.Errorf("switchboard/nats: subscribe %q: %w", topic, err)
	}
	b.topics[topic] = &topicSub{sub: sub, refs: 1}
	b.mu.Unlock()
	b.flush(ctx)
	return nil
}

// flush waits for the server to have processed what was sent, when connected.
func (b *Broker) flush(ctx context.Context) {
	if b.nc.Status() != nats.CONNECTED {
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.subTime)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		// The subscription stays: the client makes it again after a reconnection.
		b.log.Warn("switchboard/nats: flush after subscribe failed", "err", err)
	}
}

// UnsubscribeTopic implements switchboard.Broker.
func (b *Broker) UnsubscribeTopic(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.topics[topic]
	if ts == nil || b.done {
		return nil
	}
	if ts.refs--; ts.refs > 0 {
		return nil
	}
	delete(b.topics, topic)
	if err := ts.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("switchboard/nats: unsubscribe %q: %w", topic, err)
	}
	return nil
}

// TopicSubscriptions returns the number of topics the node is subscribed to on NATS.
func (b *Broker) TopicSubscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.topics)
}

// Subscribed reports whether the node is subscribed to topic on NATS.
func (b *Broker) Subscribed(topic string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.topics[topic] != nil
}

// Healthy reports whether the broker is connected to a NATS server.
func (b *Broker) Healthy() bool { return b.nc.Status() == nats.CONNECTED }

// Health checks the connection with a round trip to the server. It returns an error
// wrapping ErrNotConnected while disconnected, ErrClosed after Close, and the round trip's
// error otherwise (ctx bounds it; without a deadline, 5 s).
func (b *Broker) Health(ctx context.Context) error {
	switch st := b.nc.Status(); st {
	case nats.CONNECTED:
	case nats.CLOSED, nats.DRAINING_SUBS, nats.DRAINING_PUBS:
		return ErrClosed
	default:
		return fmt.Errorf("%w (%s)", ErrNotConnected, st)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("switchboard/nats: health: %w", err)
	}
	return nil
}

// closing reports whether Close has been called.
func (b *Broker) closing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// Close implements switchboard.Broker. It drains the connection — messages already
// received are still delivered — and waits for it to close (about Options.DrainTimeout at
// most). Nothing is delivered after Close returns.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil
	}
	b.done = true
	b.topics = make(map[string]*topicSub)
	b.mu.Unlock()

	b.leave() // a node closed without Leave still says goodbye and stops its heartbeats
	if err := b.nc.Drain(); err != nil {
		b.nc.Close()
	}
	select {
	case <-b.closed:
	case <-time.After(b.nc.Opts.DrainTimeout + time.Second):
		b.nc.Close()
		select { // the closed handler is not called with nats.NoCallbacksAfterClientClose
		case <-b.closed:
		case <-time.After(time.Second):
		}
	}
	b.dmu.Lock()
	b.deliver = nil
	b.dmu.Unlock()
	return nil
}
