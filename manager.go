package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/ratelimit"
)

// Manager is the registry of live connections, by client ID, user and topic, and the
// HTTP handler that upgrades requests to WebSocket connections. One Manager may serve
// several endpoints in different wire formats (see Endpoint); a broadcast reaches the
// clients of all of them.
//
// A Manager starts one background goroutine (the keepalive sweeper) and, on Linux, another
// for its idle connections when the first one connects (idlepoll_linux.go); Shutdown stops
// them.
type Manager struct {
	cfg    Config
	router *Router
	reg    registry
	broker Broker
	hist   *managerHistory // nil: no topic history
	inbox  *inbox          // nil when Config.Inbox is off
	ipRate *ratelimit.Keyed
	def    *endpoint

	ctx    context.Context // cancelled by Shutdown; handed to handlers
	cancel context.CancelFunc
	start  time.Time // base of the monotonic clock of now()
	closed atomic.Bool
	mu     sync.RWMutex   // orders upgrades (read) against Shutdown (write), for wg
	wg     sync.WaitGroup // connection goroutines
	sweep  chan struct{}  // closed when the sweeper exits
	stats  counters

	nodeID  string       // Config.NodeID, or a random UUID
	cluster ClusterStore // nil on a single node (cluster.go)

	idleOnce sync.Once   // starts idle
	idle     *idlePoller // watches idle connections' sockets; nil when unavailable (idle.go)
	readers  sync.Pool   // *bufio.Reader of Config.ReadBufferSize, lent to readers (readbuf.go)
}

// New returns a Manager configured by cfg (see Config for the defaults).
func New(cfg Config) *Manager {
	cfg = cfg.WithDefaults()
	m := &Manager{
		cfg:    cfg,
		router: NewRouter(),
		broker: cfg.Broker,
		start:  time.Now(),
		sweep:  make(chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.reg.init()
	if m.broker == nil {
		m.broker = NewMemoryBroker()
	}
	m.hist = newManagerHistory(cfg, m.broker)
	m.inbox = newInbox(cfg.Inbox, m.broker)
	if cfg.ConnRatePerIP > 0 {
		m.ipRate = ratelimit.NewKeyed(ratelimit.Config{Rate: rate.Limit(cfg.ConnRatePerIP), Burst: cfg.ConnBurstPerIP})
	}
	m.def = m.newEndpoint(EndpointConfig{Codec: cfg.Codec})
	if err := m.broker.Start(m.deliver); err != nil {
		cfg.Logger.Error("switchboard: broker failed to start", "err", err)
	}
	m.startCluster()
	m.checkInboxStore()
	go m.sweeper()
	return m
}

// Handle registers h for messages of type typ on every connection of the default protocol.
// Control types (CONNECT, AUTHENTICATE, SUBSCRIBE, UNSUBSCRIBE, PING, PONG, DISCONNECT)
// are handled by the manager and cannot be registered.
func (m *Manager) Handle(typ string, h HandlerFunc) { m.router.Handle(typ, h) }

// Router returns the manager's router of message handlers.
func (m *Manager) Router() *Router { return m.router }

// Conn returns the live connection with the given client ID on this node, or nil.
func (m *Manager) Conn(clientID string) *Conn { return m.reg.conn(clientID) }

// UserConns returns the live connections of a user on this node.
func (m *Manager) UserConns(userID string) []*Conn {
	s := &m.reg.users[shardOf(userID)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*Conn(nil), s.m[userID]...)
}

// Config returns the manager's configuration with defaults applied.
func (m *Manager) Config() Config { return m.cfg }

// ServeHTTP upgrades the request to a WebSocket connection of the default endpoint
// (Config.Codec, wire protocol v1). Mount the manager at /ws.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.def.ServeHTTP(w, r) }

// now is the manager's monotonic clock in nanoseconds; 0 is never returned.
func (m *Manager) now() int64 { return int64(time.Since(m.start)) + 1 }

func (m *Manager) reportError(c *Conn, err error) {
	m.stats.errors.Add(1)
	if f := m.cfg.OnError; f != nil {
		f(c, err)
	}
	id := ""
	if c != nil {
		id = c.id
	}
	m.cfg.Logger.Debug("switchboard: connection error", "client", id, "err", err)
}

func (m *Manager) stateChanged(c *Conn, from, to State) {
	if f := m.cfg.OnStateChange; f != nil {
		f(c, from, to)
	}
}

func (m *Manager) addSub(ctx context.Context, topic string, c *Conn) error {
	if m.reg.addSub(topic, c) {
		if err := m.broker.SubscribeTopic(ctx, topic); err != nil {
			m.reg.removeSub(topic, c)
			return fmt.Errorf("switchboard: broker subscribe %q: %w", topic, err)
		}
	}
	m.clusterSubscribed(topic, c)
	return nil
}

func (m *Manager) removeSub(topic string, c *Conn) {
	defer m.clusterUnsubscribed(topic, c) // after the registry, which a store may be reading
	if m.reg.removeSub(topic, c) {
		if err := m.broker.UnsubscribeTopic(m.ctx, topic); err != nil {
			m.cfg.Logger.Warn("switchboard: broker unsubscribe failed", "topic", topic, "err", err)
		}
	}
}

// ValidTopic reports whether topic is a valid topic name: 1 to maxLen bytes of ASCII
// letters, digits and the punctuation : . _ - @ / = + , #.
func ValidTopic(topic string, maxLen int) bool {
	if topic == "" || (maxLen > 0 && len(topic) > maxLen) {
		return false
	}
	for i := 0; i < len(topic); i++ {
		ch := topic[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == ':' || ch == '.' || ch == '_' || ch == '-' || ch == '@' || ch == '/' ||
			ch == '=' || ch == '+' || ch == ',' || ch == '#':
		default:
			return false
		}
	}
	return true
}

func (m *Manager) validTopic(topic string) error {
	if !ValidTopic(topic, m.cfg.MaxTopicLength) {
		limit := "any number of"
		if m.cfg.MaxTopicLength > 0 {
			limit = "1-" + strconv.Itoa(m.cfg.MaxTopicLength)
		}
		return fmt.Errorf("%w: %q (%s characters of A-Z a-z 0-9 : . _ - @ / = + , #)", ErrInvalidTopic, truncate(topic, 64), limit)
	}
	return nil
}

// truncate shortens s to at most n bytes plus an ellipsis, cutting at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// closeReason fits a reason into a close frame: at most 123 bytes of valid UTF-8.
func closeReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= 123 {
		return s
	}
	return truncate(s, 120)
}

// EndpointConfig configures one endpoint of a Manager.
type EndpointConfig struct {
	// Codec is the endpoint's wire format. Default JSONCodec.
	Codec Codec
	// Protocol handles what the endpoint's connections send. Default: wire protocol v1
	// (control messages handled by the manager, other types dispatched to the Router).
	Protocol Protocol
	// Subprotocols lists the WebSocket subprotocols the endpoint accepts, in order of
	// preference; the first the client also offers is chosen, and unknown ones are ignored
	// (RFC 6455). Default for the JSON codec and the default protocol: SubprotocolV1Batch,
	// SubprotocolV1. Clients asking for none are served with SubprotocolV1's behaviour,
	// unless RequireSubprotocol is set.
	Subprotocols []string
	// RequireSubprotocol refuses (HTTP 400) an upgrade that negotiates none of Subprotocols.
	RequireSubprotocol bool
}

type endpoint struct {
	m          *Manager
	codec      Codec
	protocol   Protocol
	accept     websocket.AcceptOptions
	requireSub bool
}

// Endpoint returns an http.Handler for another endpoint of the same manager, e.g. a
// different wire format on another path. Its connections share the manager's registry,
// limits and authentication.
func (m *Manager) Endpoint(cfg EndpointConfig) http.Handler { return m.newEndpoint(cfg) }

func (m *Manager) newEndpoint(cfg EndpointConfig) *endpoint {
	ep := &endpoint{m: m, codec: cfg.Codec, protocol: cfg.Protocol, requireSub: cfg.RequireSubprotocol}
	if ep.codec == nil {
		ep.codec = JSONCodec{}
	}
	subs := cfg.Subprotocols
	if ep.protocol == nil {
		ep.protocol = envelopeProtocol{}
		if subs == nil && !ep.codec.Binary() {
			subs = []string{SubprotocolV1Batch, SubprotocolV1}
		}
	}
	ep.accept = websocket.AcceptOptions{
		Subprotocols:         subs,
		OriginPatterns:       m.cfg.OriginPatterns,
		InsecureSkipVerify:   m.cfg.InsecureSkipOriginCheck,
		CompressionMode:      m.cfg.Compression.library(),
		CompressionThreshold: m.cfg.CompressionThreshold,
	}
	return ep
}

// httpError writes a JSON error body: {"error": code, "message": message}.
func httpError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
}

func (ep *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := ep.m
	m.mu.RLock()
	if m.closed.Load() {
		m.mu.RUnlock()
		m.onRejected("shutting_down")
		httpError(w, http.StatusServiceUnavailable, "shutting_down", "server is shutting down")
		return
	}
	m.wg.Add(1) // handed to the read loop once the connection is up
	m.mu.RUnlock()
	started := false
	defer func() {
		if !started {
			m.wg.Done()
		}
	}()
	ip := m.cfg.ClientIP(r)
	if m.ipRate != nil && !m.ipRate.Allow(ip) {
		m.onRejected("rate_limited")
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusTooManyRequests, string(CodeRateLimited), "too many connection attempts")
		return
	}

	if ep.requireSub && !offersAny(r, ep.accept.Subprotocols) {
		m.onRejected("bad_handshake")
		httpError(w, http.StatusBadRequest, "subprotocol_required",
			"this endpoint requires one of the subprotocols "+strings.Join(ep.accept.Subprotocols, ", "))
		return
	}

	// A token at the handshake authenticates the connection at once. A bad one does not
	// refuse the upgrade: the client is told with ERROR and may still send AUTHENTICATE.
	var ident *auth.Identity
	var authErr error
	if m.cfg.Authenticator != nil {
		if tok := auth.TokenFromRequest(r, m.cfg.TokenCookie); tok != "" {
			ident, authErr = m.cfg.Authenticator.Authenticate(r.Context(), tok)
			if authErr == nil && m.userAtCap(r.Context(), ident.UserID) {
				m.onRejected("too_many_connections")
				httpError(w, http.StatusTooManyRequests, "too_many_connections", ErrTooManyConnections.Error())
				return
			}
		}
	}

	c := &Conn{id: uuid.NewString(), m: m, ep: ep, remoteIP: ip}
	m.stateChangedInit(c)
	ws, err := websocket.Accept(&leanWriter{ResponseWriter: w, c: c, rsize: m.cfg.ReadBufferSize, wsize: m.cfg.WriteBufferSize}, r, &ep.accept)
	if err != nil {
		// Accept has answered the request (403 for a foreign origin, 400 for a bad handshake).
		m.onRejected("bad_handshake")
		c.setState(StateDisconnected) // through OnStateChange, like every other change
		m.cfg.Logger.Debug("switchboard: upgrade refused", "ip", ip, "err", err)
		return
	}
	c.ws = ws
	c.batch = strings.EqualFold(ws.Subprotocol(), SubprotocolV1Batch) && !ep.codec.Binary()
	if m.cfg.MaxMessageSize > 0 {
		ws.SetReadLimit(m.cfg.MaxMessageSize)
	} else {
		ws.SetReadLimit(-1)
	}
	if m.cfg.MessageRate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(m.cfg.MessageRate), m.cfg.MessageBurst)
	}
	now := m.now()
	c.connectedAt = now
	c.lastRead.Store(now)
	if m.cfg.PingInterval > 0 {
		c.nextPing.Store(now + int64(m.cfg.PingInterval))
	}
	m.reg.addConn(c)
	m.onOpened(c)
	c.moveFrom(StateConnecting, StateConnected)

	if ident != nil {
		if c.moveFrom(StateConnected, StateAuthenticating) {
			if err := c.attach(ident); err != nil {
				authErr = err
				c.moveFrom(StateAuthenticating, StateConnected)
			} else if c.moveFrom(StateAuthenticating, StateAuthenticated) {
				c.deliverInbox(m.ctx)
			}
		}
	}
	if authErr != nil {
		m.onAuthFailure(authErr)
		c.sendError(nil, CodeUnauthorized, "handshake token rejected: "+authReason(authErr))
	}

	ep.protocol.OnConnect(m.ctx, c)
	if f := m.cfg.OnConnect; f != nil {
		f(c)
	}
	started = true
	c.startReading()
	if m.closed.Load() {
		// Shutdown began while this connection was being set up and may have missed it.
		c.Close(CloseGoingAway, "server shutting down")
	}
}

// offersAny reports whether the client's Sec-WebSocket-Protocol offers one of subs.
func offersAny(r *http.Request, subs []string) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			for _, s := range subs {
				if strings.EqualFold(strings.TrimSpace(p), s) {
					return true
				}
			}
		}
	}
	return false
}

// stateChangedInit moves a new connection to CONNECTING.
func (m *Manager) stateChangedInit(c *Conn) {
	if err := c.state.moveFrom(StateInitializing, StateConnecting); err == nil {
		m.stateChanged(c, StateInitializing, StateConnecting)
	}
}

// authReason maps an authentication error to the short reason sent to clients.
func authReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooManyConnections):
		return "too_many_connections"
	case errors.Is(err, ErrUserMismatch):
		return "user_mismatch"
	case errors.Is(err, ErrAuthDisabled):
		return "auth_disabled"
	}
	return auth.Reason(err)
}

// Shutdown stops accepting connections, sends DISCONNECT and close 1001 to every client,
// waits for their writers to drain and their close handshakes to finish, and stops the
// manager's goroutines. When ctx ends first, the remaining connections are closed at once
// and ctx's error is returned.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	first := m.closed.CompareAndSwap(false, true)
	m.mu.Unlock()
	if !first {
		return ErrShutdown
	}
	for _, c := range m.reg.snapshot() {
		c.Close(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range m.reg.snapshot() {
			c.closeTransport()
		}
		<-done
	}
	m.cancel()
	<-m.sweep
	m.leaveCluster(ctx)
	m.stopIdlePoller()
	if cerr := m.broker.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// sweeper is the one timer of the manager: every tick it walks the connections and sends
// PINGs, closes connections whose pong, authentication or token has run out, and closes
// connections whose socket has stopped accepting writes. One walk over 100k connections
// costs a few milliseconds; per-connection timers would cost memory on each connection.
func (m *Manager) sweeper() {
	defer close(m.sweep)
	tick := m.sweepInterval()
	t := time.NewTicker(tick)
	defer t.Stop()
	var batch []*Conn
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		// Checks run outside the registry locks: closing a connection calls user hooks.
		for i := range m.reg.conns {
			s := &m.reg.conns[i]
			s.mu.RLock()
			for _, c := range s.m {
				batch = append(batch, c)
			}
			s.mu.RUnlock()
			now := m.now()
			for j, c := range batch {
				m.check(c, now)
				batch[j] = nil
			}
			batch = batch[:0]
		}
	}
}

func (m *Manager) sweepInterval() time.Duration {
	d := time.Second
	for _, x := range []time.Duration{m.cfg.PingInterval / 4, m.cfg.PongTimeout / 4, m.cfg.AuthTimeout / 4, m.cfg.WriteTimeout / 4, m.cfg.TokenExpiryWarning / 4} {
		if x > 0 && x < d {
			d = x
		}
	}
	if d < 5*time.Millisecond {
		d = 5 * time.Millisecond
	}
	return d
}

// check applies the time-based rules to one connection. It runs on the sweeper goroutine,
// so it only queues messages and starts closes, never waits.
func (m *Manager) check(c *Conn, now int64) {
	cfg := &m.cfg
	if ws := c.writeStart.Load(); ws != 0 && cfg.WriteTimeout > 0 && now-ws > int64(cfg.WriteTimeout) {
		// Also while closing: a writer stuck on a dead socket would hold the close forever.
		c.writeStart.Store(0)
		c.m.onSlowConsumer("write_timeout")
		c.kill(CloseTryAgainLater, "write timeout")
		return
	}
	st := c.state.load()
	if !st.Live() {
		return
	}
	if cfg.RequireAuth && cfg.AuthTimeout > 0 && st != StateAuthenticated && c.identity.Load() == nil && now-c.connectedAt > int64(cfg.AuthTimeout) {
		c.sendError(nil, CodeUnauthorized, "authentication timeout")
		c.closeWith(ClosePolicyViolation, "authentication timeout", true)
		return
	}
	if exp := c.tokenExp.Load(); exp != 0 {
		if now >= exp {
			c.tokenExp.Store(0)
			c.sendError(nil, CodeUnauthorized, "token expired")
			c.closeWith(CloseAuthFailed, "token expired", true)
			return
		}
		if w := c.tokenWarn.Load(); w != 0 && now >= w {
			c.tokenWarn.Store(0)
			secs := strconv.FormatInt((exp-now)/int64(time.Second), 10)
			c.sendError(nil, CodeTokenExpiring, "token expires in "+secs+"s; send AUTHENTICATE with a fresh token")
		}
	}
	if cfg.PingInterval > 0 {
		if sent := c.pingSent.Load(); sent != 0 {
			if c.lastRead.Load() >= sent {
				c.pingSent.Store(0)
			} else if cfg.PongTimeout > 0 && now-sent > int64(cfg.PongTimeout) {
				c.abort(ClosePolicyViolation, "pong timeout")
				return
			}
		}
		if next := c.nextPing.Load(); now >= next {
			c.nextPing.Store(now + int64(cfg.PingInterval))
			if c.pingSent.Load() == 0 {
				c.pingSent.Store(now)
			}
			c.sendPing()
		}
	}
}

// sendPing sends the codec's PING; codecs without one get a WebSocket ping frame instead.
func (c *Conn) sendPing() {
	ping := &Message{Type: TypePing, ID: uuid.NewString(), Timestamp: nowSeconds()}
	frame, err := c.ep.codec.Encode(nil, ping)
	if err == nil {
		c.enqueue(frame)
		return
	}
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		return
	}
	c.m.wg.Add(1) // under mu, as in enqueue: the read loop still holds the group open
	c.mu.Unlock()
	go func() {
		defer c.m.wg.Done()
		ctx, cancel := context.WithTimeout(c.m.ctx, c.m.cfg.WriteTimeout+c.m.cfg.PongTimeout)
		defer cancel()
		if c.ws.Ping(ctx) == nil {
			c.lastRead.Store(c.m.now())
		}
	}()
}
