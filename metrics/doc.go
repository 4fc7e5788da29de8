// Package metrics exposes a switchboard.Manager on Prometheus.
//
// [New] returns a [*Metrics], which implements [switchboard.Observer]: put it in
// switchboard.Config.Observer and it counts what the manager does (connections opened and
// closed, messages in and out, fan-outs, slow consumers, rate limiting, authentication
// failures). [Metrics.Watch] adds gauges read from a manager at scrape time: live
// connections by state and by negotiated subprotocol, topics and subscriptions.
//
//	reg := prometheus.NewRegistry()
//	obs, err := metrics.New(reg)
//	if err != nil {
//		return err
//	}
//	m := switchboard.New(switchboard.Config{Observer: obs})
//	obs.Watch(m)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The metrics are registered on the registry the application supplies; nothing is
// registered on prometheus.DefaultRegisterer unless it is the one passed. To add constant
// labels (an instance or shard name) or a prefix, pass a registerer wrapped with
// prometheus.WrapRegistererWith or prometheus.WrapRegistererWithPrefix.
//
// # Metrics
//
// Counters:
//
//	switchboard_connections_opened_total{codec}      connections upgraded, by endpoint codec
//	switchboard_connections_closed_total{code}       connections ended, by close code
//	switchboard_handshakes_rejected_total{reason}    upgrades refused
//	switchboard_messages_in_total{type}              messages read from clients
//	switchboard_bytes_in_total                       bytes of those messages
//	switchboard_messages_out_total{type}             messages queued to clients
//	switchboard_bytes_out_total                      bytes of those messages
//	switchboard_slow_consumers_total{reason}         connections closed with 1013
//	switchboard_rate_limited_total                   inbound messages dropped by the rate limit
//	switchboard_auth_failures_total{reason}          failed authentications
//
// Histograms:
//
//	switchboard_fanout_duration_seconds{target}      time to fan a publication out on this node
//	switchboard_fanout_recipients{target}            local connections a publication reached
//
// Gauges, with [Metrics.Watch]:
//
//	switchboard_connections{state}                   live connections by state
//	switchboard_connections_by_subprotocol{subprotocol} live connections by subprotocol
//	switchboard_topics                               topics with a local subscriber
//	switchboard_subscriptions                        (connection, topic) pairs
//
// Counters, with [Metrics.Watch]:
//
//	switchboard_history_gaps_filled_total            publications the broker lost on their way
//	                                                 to this node, delivered from the history
//	switchboard_history_gaps_lost_total              such publications the history no longer held
//
// docs/operations.md says what each means and which deserve alerts.
//
// # Label cardinality
//
// Every label has a bounded set of values, so that no client can make the number of time
// series grow:
//
//   - type: the message types of wire protocol v1 (CONNECT, PING, …), "invalid" for inbound
//     frames that could not be decoded, the types listed with [WithMessageTypes], and
//     "other" for anything else. Inbound types are chosen by clients: an application with
//     its own message types (routed with Manager.Handle, or sent with its own type names)
//     lists them with WithMessageTypes to count them apart.
//   - code: the registered close codes 1000–1015 (but the reserved 1004), Switchboard's
//     4001 and 4003, the codes listed with [WithCloseCodes], and "other". Clients choose
//     the code of the close frames they send.
//   - target: all, topic, users, client.
//   - codec, reason (handshakes, slow consumers, authentication): the values the
//     switchboard package uses are created up front; other values are set by the
//     application's code, not by clients, and get their own series up to a limit of 16
//     new values per metric, after which they count as "other".
//   - subprotocol: "none" (the client asked for no subprotocol), switchboard.v1,
//     switchboard.v1.batch, and up to 16 subprotocols of the application's own endpoints,
//     after which they count as "other". The server only ever negotiates a subprotocol
//     from its endpoint's list, so clients cannot add values.
//
// All the known label values are created by New, so they are exported as 0 before anything
// happens, and rate() and absent-series alerts work from the start.
//
// # Cost
//
// The Observer methods are called on the manager's hot paths. New resolves every known
// label value to its child metric once, so that MessageIn, MessagesOut and Fanout do a
// lookup in a read-only map (or an array index) and atomic additions: no allocation, no
// label hashing, no lock. BenchmarkObserver* measures them; BenchmarkFanoutWithMetrics,
// BenchmarkFanoutWithoutMetrics and BenchmarkFanoutPaired measure a fan-out to 1000
// WebSocket subscribers with and without.
package metrics
