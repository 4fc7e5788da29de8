// Package switchboard is a realtime pub/sub framework: it pushes messages over WebSockets
// to browsers and services — to everyone, to given users, or to the subscribers of a topic —
// with JWT authentication, rate limits and size caps.
//
// A Manager is an http.Handler. Mount it at /ws in any mux:
//
//	jwt, _ := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
//	m := switchboard.New(switchboard.Config{Authenticator: jwt, RequireAuth: true})
//	http.Handle("/ws", m)
//
// and send from anywhere in the application:
//
//	msg, _ := switchboard.NewNotification(switchboard.Notification{Title: "Order shipped", Message: "#1042 is on its way"})
//	m.BroadcastToUsers(ctx, msg, "42")         // every tab of user 42
//	upd, _ := switchboard.NewData("order", order)
//	m.Publish(ctx, "user:42:orders", upd)      // the topic's subscribers
//
// # Wire protocol
//
// The default endpoint speaks wire protocol v1: one JSON object per text frame,
// {"type", "payload", "id", "timestamp", "correlation_id", "topic"}. Clients send CONNECT,
// AUTHENTICATE, SUBSCRIBE, UNSUBSCRIBE, PING, ACTION, DISCONNECT and any type the
// application registers with Manager.Handle; every reply carries the request's id as
// correlation_id. docs/protocol.md in the repository is the reference: every message, every
// error code and every close code.
//
// # Connections
//
// Each Conn moves through the states of State (CONNECTING → CONNECTED → AUTHENTICATING →
// AUTHENTICATED → DISCONNECTING → DISCONNECTED, or ERROR) along a fixed transition table
// (CanTransition). A connection has a goroutine reading its socket only while the client
// is sending (an idle connection waits in one shared epoll instance on Linux, in a small
// waiting goroutine elsewhere) and, only while messages are queued for it, one writing.
// Sends never block: each connection has a bounded
// queue, and a client that cannot keep up is closed with 1013 rather than slowing anyone
// else. One sweeper goroutine per Manager sends keepalive PINGs and enforces the pong,
// authentication and token-expiry deadlines of every connection.
//
// # Delivery
//
// Broadcast, BroadcastToUsers, Publish and SendToClient encode a message once per wire
// format in use, however many recipients it has, and hand it to the Broker, which carries it
// to every node (the default MemoryBroker serves a single node). Delivery is at most once:
// a message sent while a client is disconnected is not kept for it — except on the topics
// that Config.History selects. Their publications carry a position (Message.Seq in
// Message.Epoch) and are kept for a while by a HistoryBroker; a client that subscribes again
// with the position of the last one it has (SUBSCRIBE with "recover", or Conn.SubscribeWith)
// gets those it missed, once and in order, before the live ones. Manager.History reads what
// is kept, and Manager.PublishWithPosition returns a publication's position. A node that a
// cluster broker failed to hand some publications to delivers them from the history before
// the next one, so its subscribers still see every Seq (Stats.GapsFilled).
// docs/guarantees.md says exactly what is promised.
//
// The user inbox (Config.Inbox) keeps messages sent with SendToUser, SendToUsers or
// BroadcastToUsers for a user who has no live connection, when their type is one of
// Config.Inbox.Types or the send asks with KeepIfOffline, and delivers them, in order, right
// after the user next authenticates (MemoryInbox on one node, the Redis store of
// adapters/redis in a cluster).
//
// # Clusters
//
// Nodes of a cluster share, besides publications, a ClusterStore: the live nodes
// (Manager.Nodes), presence (Manager.Presence, the PRESENCE message) and each user's
// connection count, so that Config.MaxConnsPerUser holds across the cluster. The Redis and
// NATS brokers of adapters/ are ClusterStores; with the MemoryBroker all three cover the one
// node. Every node has an ID, Config.NodeID, reported in NodeInfo and PresenceInfo.
//
// # Other wire formats
//
// A Manager serves several endpoints (Manager.Endpoint), each with its own Codec and
// Protocol, sharing one registry of connections, users and topics: the packages
// adapters/notifier (plain {"type", "data"} frames for a local app's front end) and
// adapters/jsonrpc (JSON-RPC 2.0 with push subscriptions) are built this way. The default
// endpoint negotiates the subprotocols SubprotocolV1 and SubprotocolV1Batch (several
// envelopes per frame for clients that ask) and, when Config.Compression is set,
// permessage-deflate.
package switchboard
