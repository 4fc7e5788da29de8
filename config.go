package switchboard

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/switchboardrt/switchboard/auth"
)

// Config configures a Manager. The zero value is a working configuration for a public site:
// every field documents its default. For numeric limits, zero means "use the default" and a
// negative value means "no limit" (or "off").
type Config struct {
	// Authenticator checks tokens from AUTHENTICATE messages and from the handshake
	// (Authorization: Bearer header, "token" query parameter, or the TokenCookie cookie).
	// Nil disables authentication: AUTHENTICATE is answered with AUTHENTICATE_FAILURE.
	Authenticator auth.Authenticator
	// RequireAuth admits only CONNECT, AUTHENTICATE, PING, PONG and DISCONNECT before a
	// connection has authenticated; anything else gets ERROR "unauthorized". A connection
	// that has not authenticated within AuthTimeout is closed with 1008.
	RequireAuth bool
	// AuthTimeout bounds the time to authenticate when RequireAuth is set. Default 10s;
	// negative: no bound.
	AuthTimeout time.Duration
	// TokenExpiryWarning is how long before a token's expiry the connection gets ERROR
	// "token_expiring", so the client can send a fresh AUTHENTICATE. Default 30s (at most
	// half the token's remaining life); negative: no warning. At expiry the connection is
	// closed with 4001.
	TokenExpiryWarning time.Duration
	// MaxAuthFailures closes a connection with 4001 after this many failed AUTHENTICATE
	// attempts. Default 5.
	MaxAuthFailures int
	// TokenCookie names a cookie read for a handshake token. Default "": cookies are not read.
	TokenCookie string
	// TopicAuthorizer decides who may subscribe to what. Default auth.UserTopics: topics
	// "user:<id>" and "user:<id>:…" are reserved to the user <id>.
	TopicAuthorizer auth.TopicAuthorizer

	// NodeID names this node in a cluster (NodeInfo.ID, PresenceInfo.Node). Default: a
	// random UUID per Manager.
	NodeID string
	// Cluster shares node, presence and per-user connection state between the nodes of a
	// cluster. Default: Broker, when it implements ClusterStore; otherwise none, and
	// presence, Nodes and MaxConnsPerUser cover this node only.
	Cluster ClusterStore

	// History keeps the latest publications of the topics it selects (the first rule
	// whose Pattern matches a topic applies), so that clients can recover what they missed
	// while disconnected (SUBSCRIBE with "recover"; see docs/guarantees.md). The Broker
	// must be a HistoryBroker (the in-memory one and adapters/redis are); with another,
	// New logs an error and history stays off: publications carry no position and every
	// recovery answers false. Default: no history.
	History []HistoryRule
	// RecoverLimit caps the publications one recovery may send; a client that missed more
	// gets "recovered": false. A recovery may take a connection's send queue over
	// SendQueueSize by up to this many messages per topic. Default 1000; negative: no cap
	// but the rule's Size.
	RecoverLimit int

	// Inbox keeps messages sent to users who have no live connection and delivers them,
	// in order, when they next authenticate. Default: only the messages sent with
	// KeepIfOffline are kept (see InboxConfig).
	Inbox InboxConfig

	// PresenceEvents selects the topics whose subscribers are told of joins and leaves
	// (JOIN and LEAVE messages published to the topic). Default nil: none.
	PresenceEvents func(topic string) bool

	// OriginPatterns lists the host patterns (path.Match syntax, e.g. "*.example.com",
	// "localhost:*") from which browsers may connect in addition to the same origin.
	// Default: same origin only. Requests without an Origin header (non-browser clients)
	// are always allowed.
	OriginPatterns []string
	// InsecureSkipOriginCheck accepts any Origin. Only for development.
	InsecureSkipOriginCheck bool

	// MaxMessageSize caps an inbound message; a larger one closes the connection with 1009.
	// Default 64 KiB.
	MaxMessageSize int64
	// SendQueueSize caps the messages queued for one connection; a connection whose queue
	// overflows is a slow consumer and is closed with 1013. Default 256.
	SendQueueSize int
	// MaxSubscriptions caps the topics one connection may subscribe to. Default 128.
	MaxSubscriptions int
	// MaxTopicLength caps a topic name in bytes. Default 200.
	MaxTopicLength int
	// MaxConnsPerUser caps the live connections of one user. Default 32.
	MaxConnsPerUser int
	// ConnRatePerIP is the sustained rate of connection attempts allowed per client IP, per
	// second; attempts over it get HTTP 429. Default 10.
	ConnRatePerIP float64
	// ConnBurstPerIP is the burst of connection attempts per IP. Default (also for negative
	// values) 40.
	ConnBurstPerIP int
	// MessageRate is the sustained rate of inbound messages per connection, per second.
	// A message over it is dropped and answered with ERROR "rate_limited". Default 50.
	MessageRate float64
	// MessageBurst is the burst of inbound messages per connection. Default (also for
	// negative values) 100.
	MessageBurst int
	// RateLimitStrikes closes a connection with 1008 when it keeps exceeding MessageRate:
	// after this many rejected messages, refilled at one per second. Default 20.
	RateLimitStrikes int

	// ReadBufferSize is the size of a connection's socket read buffer while it reads. Default
	// 512 bytes; larger messages are read straight into their own memory. On plain TCP
	// sockets an idle connection lends its buffer back to a pool and keeps 16 bytes.
	ReadBufferSize int
	// WriteBufferSize is the size of a connection's own write buffer. Messages written from
	// the send queue are gathered per batch into a pooled buffer and sent with one write
	// system call whatever this size; it matters only for the frames the WebSocket library
	// writes by itself (pongs, close), which a small buffer sends in two writes rather than
	// one. Default 64 bytes, the minimum: it lives as long as the connection, so it weighs
	// on memory per connection.
	WriteBufferSize int

	// Compression enables permessage-deflate for clients that offer it. Default
	// CompressionOff. Inbound messages are limited by MaxMessageSize after decompression.
	Compression CompressionMode
	// CompressionThreshold is the smallest message compressed; smaller ones go out as they
	// are. Default: 128 bytes with context takeover, 512 without.
	CompressionThreshold int
	// BatchMaxMessages caps the messages joined into one frame for SubprotocolV1Batch
	// clients. Default 64.
	BatchMaxMessages int
	// BatchMaxBytes caps the size of a batched frame. Default 64 KiB; a message larger
	// than this goes alone.
	BatchMaxBytes int

	// PingInterval is how often the server sends PING to each connection. Default 25s;
	// negative: no PINGs (and so no pong timeout).
	PingInterval time.Duration
	// PongTimeout closes a connection (1008) that sends nothing within this long after a
	// server PING. Default 10s; negative: silence never closes a connection.
	PongTimeout time.Duration
	// WriteTimeout closes a connection (1013) whose socket has not accepted a write for this
	// long. Default 10s.
	WriteTimeout time.Duration

	// ClientIP extracts the client IP used for per-IP limits. Default: the host part of
	// r.RemoteAddr. Behind a trusted proxy, read X-Forwarded-For here.
	ClientIP func(r *http.Request) string
	// Broker carries publications between nodes. Default: an in-memory broker (one node).
	Broker Broker
	// Codec is the wire format of ServeHTTP. Default JSONCodec (wire protocol v1).
	Codec Codec
	// Observer receives the manager's events for metrics (see the metrics package).
	// Default: none.
	Observer Observer
	// Logger receives the manager's logs. Default slog.Default(). Hot paths log only at Debug.
	Logger *slog.Logger

	// OnConnect is called once a connection is upgraded and registered.
	OnConnect func(c *Conn)
	// OnDisconnect is called once a connection is closed and unregistered, with the close
	// code (1006 when the network failed without a close frame) and reason.
	OnDisconnect func(c *Conn, code int, reason string)
	// OnError is called for errors a connection meets: handler panics and errors, illegal
	// state transitions, protocol violations.
	OnError func(c *Conn, err error)
	// OnStateChange is called after every state change of a connection.
	OnStateChange func(c *Conn, from, to State)
}

func orDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orFloat(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// WithDefaults returns a copy of c with every zero field set to its default, and negative
// values that mean "off" normalised: what New uses.
func (c Config) WithDefaults() Config {
	c.AuthTimeout = orDuration(c.AuthTimeout, 10*time.Second)
	c.TokenExpiryWarning = orDuration(c.TokenExpiryWarning, 30*time.Second)
	c.MaxAuthFailures = orInt(c.MaxAuthFailures, 5)
	if c.TopicAuthorizer == nil {
		c.TopicAuthorizer = auth.UserTopics
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 64 << 10
	}
	c.SendQueueSize = orInt(c.SendQueueSize, 256)
	c.History, c.RecoverLimit = historyDefaults(c.History, c.RecoverLimit)
	c.MaxSubscriptions = orInt(c.MaxSubscriptions, 128)
	c.MaxTopicLength = orInt(c.MaxTopicLength, 200)
	c.MaxConnsPerUser = orInt(c.MaxConnsPerUser, 32)
	c.ConnRatePerIP = orFloat(c.ConnRatePerIP, 10)
	c.ConnBurstPerIP = orInt(c.ConnBurstPerIP, 40)
	c.MessageRate = orFloat(c.MessageRate, 50)
	if c.MessageBurst <= 0 {
		c.MessageBurst = 100
	}
	if c.ConnBurstPerIP < 0 {
		c.ConnBurstPerIP = 40
	}
	c.RateLimitStrikes = orInt(c.RateLimitStrikes, 20)
	c.ReadBufferSize = orInt(c.ReadBufferSize, 512)
	c.WriteBufferSize = orInt(c.WriteBufferSize, 64)
	if c.ReadBufferSize < 64 {
		c.ReadBufferSize = 64
	}
	if c.WriteBufferSize < 64 {
		c.WriteBufferSize = 64
	}
	c.Inbox.Size = orInt(c.Inbox.Size, 100)
	c.Inbox.TTL = orDuration(c.Inbox.TTL, 24*time.Hour)
	c.BatchMaxMessages = orInt(c.BatchMaxMessages, 64)
	c.BatchMaxBytes = orInt(c.BatchMaxBytes, 64<<10)
	c.PingInterval = orDuration(c.PingInterval, 25*time.Second)
	c.PongTimeout = orDuration(c.PongTimeout, 10*time.Second)
	c.WriteTimeout = orDuration(c.WriteTimeout, 10*time.Second)
	if c.ClientIP == nil {
		c.ClientIP = remoteIP
	}
	if c.Codec == nil {
		c.Codec = JSONCodec{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// InboxConfig configures the user inbox: which messages to users are kept while the user
// has no live connection (on any node), how many and for how long. A message is kept when
// it is sent with BroadcastToUsers, SendToUser or SendToUsers and either its type is one of
// Types or the send says KeepIfOffline; it is delivered right after the user's next
// successful authentication, on the connection that authenticated. docs/inbox.md states
// the guarantees.
type InboxConfig struct {
	// Store keeps the messages. Default: the Broker when it implements InboxStore (the
	// Redis broker of adapters/redis does, so that every node of a cluster sees the same
	// inboxes), otherwise a MemoryInbox, which serves one node.
	Store InboxStore
	// Types lists the message types kept for offline users, e.g. "NOTIFICATION". Default
	// none: only messages sent with KeepIfOffline are kept.
	Types []string
	// Size caps the messages kept per user; the oldest are dropped first. Default 100;
	// negative: the inbox is off (nothing is kept, logins do not read the store).
	Size int
	// TTL is how long a kept message waits for its user. Default 24h; negative: the inbox
	// is off.
	TTL time.Duration
}

// remoteIP is the default Config.ClientIP: the host part of r.RemoteAddr.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
