package metrics

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardrt/switchboard"
)

const namespace = "switchboard"

// otherLabel is the label value of everything outside a label's known values.
const otherLabel = "other"

// maxOpenValues caps the label values, beyond the known ones, that a label set by the
// application's code (codec, reasons) may take before further ones count as "other".
const maxOpenValues = 16

// DefaultFanoutBuckets are the buckets of switchboard_fanout_duration_seconds, in seconds:
// from 1µs (one recipient) to 100ms (a broadcast to very many).
var DefaultFanoutBuckets = []float64{
	1e-6, 2.5e-6, 5e-6,
	1e-5, 2.5e-5, 5e-5,
	1e-4, 2.5e-4, 5e-4,
	1e-3, 2.5e-3, 5e-3,
	1e-2, 2.5e-2, 5e-2,
	0.1,
}

// recipientBuckets are the buckets of switchboard_fanout_recipients.
var recipientBuckets = []float64{0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000}

// protocolTypes are the message types of wire protocol v1.
var protocolTypes = []string{
	switchboard.TypeConnect,
	switchboard.TypeConnectAck,
	switchboard.TypeAuthenticate,
	switchboard.TypeAuthenticateSuccess,
	switchboard.TypeAuthenticateFailure,
	switchboard.TypeSubscribe,
	switchboard.TypeSubscribeSuccess,
	switchboard.TypeSubscribeFailure,
	switchboard.TypeUnsubscribe,
	switchboard.TypeUnsubscribeAck,
	switchboard.TypePing,
	switchboard.TypePong,
	switchboard.TypeAction,
	switchboard.TypeActionResult,
	switchboard.TypeData,
	switchboard.TypeEvent,
	switchboard.TypeNotification,
	switchboard.TypeError,
	switchboard.TypeDisconnect,
}

// invalidType is the type MessageIn gets for a frame that could not be decoded.
const invalidType = "invalid"

// closeCodes are the close codes labelled as themselves: the registered ones from 1000 to
// 1015 (1004 is reserved) and Switchboard's own.
var closeCodes = []int{
	1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015,
	switchboard.CloseAuthFailed, switchboard.CloseForbidden,
}

// The reasons the switchboard package reports, created up front.
var (
	codecNames       = []string{switchboard.JSONCodec{}.Name()}
	handshakeReasons = []string{"rate_limited", "too_many_connections", "shutting_down", "bad_handshake"}
	slowReasons      = []string{"queue_overflow", "write_timeout"}
	authReasons      = []string{
		"invalid", "expired", "malformed", "no_token", "too_many_connections", "user_mismatch", "auth_disabled",
	}
)

// targetNames are the values of the target label, by switchboard.TargetKind.
var targetNames = [...]string{
	switchboard.TargetAll:    "all",
	switchboard.TargetTopic:  "topic",
	switchboard.TargetUsers:  "users",
	switchboard.TargetClient: "client",
}

// Option configures New.
type Option func(*config)

type config struct {
	messageTypes  []string
	closeCodes    []int
	fanoutBuckets []float64
}

// WithMessageTypes adds message types counted under their own name in the type label of
// switchboard_messages_in_total and switchboard_messages_out_total: an application's own
// types, beyond those of wire protocol v1. Other types count as "other".
func WithMessageTypes(types ...string) Option {
	return func(c *config) { c.messageTypes = append(c.messageTypes, types...) }
}

// WithCloseCodes adds close codes counted under their own number in the code label of
// switchboard_connections_closed_total: the application's own codes (4000–4999), beyond
// the registered codes 1000–1015 and Switchboard's 4001 and 4003. Other codes count as
// "other".
func WithCloseCodes(codes ...int) Option {
	return func(c *config) { c.closeCodes = append(c.closeCodes, codes...) }
}

// WithFanoutBuckets replaces DefaultFanoutBuckets, the buckets (upper bounds in seconds,
// increasing) of switchboard_fanout_duration_seconds.
func WithFanoutBuckets(buckets ...float64) Option {
	return func(c *config) { c.fanoutBuckets = append([]float64(nil), buckets...) }
}

// Metrics counts a Manager's events on Prometheus metrics. It implements
// switchboard.Observer, to be set as Config.Observer, and prometheus.Collector: New
// registers it. Its methods are safe for concurrent use. One Metrics may observe and watch
// several managers; their figures add up.
type Metrics struct {
	connOpened *openCounters
	connClosed map[int]prometheus.Counter // read-only after New
	closedVec  *prometheus.CounterVec
	closedOthr prometheus.Counter
	rejected   *openCounters
	msgIn      closedCounters
	bytesIn    prometheus.Counter
	msgOut     closedCounters
	bytesOut   prometheus.Counter
	slow       *openCounters
	rateLimitd prometheus.Counter
	authFail   *openCounters

	fanoutTime  [len(targetNames)]prometheus.Observer // by TargetKind; [0] unused
	fanoutRcpt  [len(targetNames)]prometheus.Observer
	fanoutTimeV *prometheus.HistogramVec
	fanoutRcptV *prometheus.HistogramVec

	watched *managerCollector

	collectors []prometheus.Collector
}

var (
	_ switchboard.Observer = (*Metrics)(nil)
	_ prometheus.Collector = (*Metrics)(nil)
)

// New creates the metrics and registers them on reg. It returns the registry's error when
// the registration fails, e.g. when metrics of the same names are registered already
// (a prometheus.AlreadyRegisteredError for a second Metrics on the same registry). A nil
// reg registers nothing: the caller may register the Metrics itself, as a Collector.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	cfg := config{fanoutBuckets: DefaultFanoutBuckets}
	for _, o := range opts {
		o(&cfg)
	}
	x := &Metrics{}

	opened := x.counterVec("connections_opened_total",
		"WebSocket connections upgraded, by the codec of their endpoint.", "codec")
	x.connOpened = newOpenCounters(opened, codecNames)

	x.closedVec = x.counterVec("connections_closed_total",
		"WebSocket connections ended, by close code (1006: lost without a close frame; codes "+
			"outside the known set count as \"other\").", "code")
	x.connClosed = make(map[int]prometheus.Counter, len(closeCodes)+len(cfg.closeCodes))
	for _, code := range append(append([]int(nil), closeCodes...), cfg.closeCodes...) {
		x.connClosed[code] = x.closedVec.WithLabelValues(strconv.Itoa(code))
	}
	x.closedOthr = x.closedVec.WithLabelValues(otherLabel)

	x.rejected = newOpenCounters(x.counterVec("handshakes_rejected_total",
		"WebSocket upgrades refused, by reason.", "reason"), handshakeReasons)

	types := append(append([]string(nil), protocolTypes...), cfg.messageTypes...)
	x.msgIn = newClosedCounters(x.counterVec("messages_in_total",
		"Messages read from clients, by type (\"invalid\": undecodable frames; types outside "+
			"the known set count as \"other\").", "type"), append(types, invalidType))
	x.bytesIn = x.counter("bytes_in_total", "Bytes of the messages read from clients.")
	x.msgOut = newClosedCounters(x.counterVec("messages_out_total",
		"Messages queued to clients, by type (types outside the known set count as \"other\").", "type"), types)
	x.bytesOut = x.counter("bytes_out_total", "Bytes of the messages queued to clients.")

	x.slow = newOpenCounters(x.counterVec("slow_consumers_total",
		"Connections closed with 1013 as slow consumers, by reason.", "reason"), slowReasons)
	x.rateLimitd = x.counter("rate_limited_total", "Inbound messages dropped by the message rate limit.")
	x.authFail = newOpenCounters(x.counterVec("auth_failures_total",
		"Failed authentications, by the reason sent to the client.", "reason"), authReasons)

	x.fanoutTimeV = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "fanout_duration_seconds",
		Help:      "Time to fan a publication out to this node's local connections (queueing, not writing), by target.",
		Buckets:   cfg.fanoutBuckets,
	}, []string{"target"})
	x.fanoutRcptV = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "fanout_recipients",
		Help:      "Local connections a publication was queued to, by target.",
		Buckets:   recipientBuckets,
	}, []string{"target"})
	x.collectors = append(x.collectors, x.fanoutTimeV, x.fanoutRcptV)
	for kind, name := range targetNames {
		if name != "" {
			x.fanoutTime[kind] = x.fanoutTimeV.WithLabelValues(name)
			x.fanoutRcpt[kind] = x.fanoutRcptV.WithLabelValues(name)
		}
	}

	x.watched = newManagerCollector()
	x.collectors = append(x.collectors, x.watched)

	if reg != nil {
		if err := reg.Register(x); err != nil {
			return nil, fmt.Errorf("metrics: registering the switchboard metrics: %w", err)
		}
	}
	return x, nil
}

func (x *Metrics) counterVec(name, help, label string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{label})
	x.collectors = append(x.collectors, v)
	return v
}

func (x *Metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	x.collectors = append(x.collectors, c)
	return c
}

// Describe implements prometheus.Collector.
func (x *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range x.collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (x *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range x.collectors {
		c.Collect(ch)
	}
}

// HandshakeRejected implements switchboard.Observer.
func (x *Metrics) HandshakeRejected(reason string) { x.rejected.get(reason).Inc() }

// ConnectionOpened implements switchboard.Observer.
func (x *Metrics) ConnectionOpened(codec string) { x.connOpened.get(codec).Inc() }

// ConnectionClosed implements switchboard.Observer.
func (x *Metrics) ConnectionClosed(code int) {
	c, ok := x.connClosed[code]
	if !ok {
		c = x.closedOthr
	}
	c.Inc()
}

// MessageIn implements switchboard.Observer.
func (x *Metrics) MessageIn(typ string, n int) {
	x.msgIn.get(typ).Inc()
	if n > 0 {
		x.bytesIn.Add(float64(n))
	}
}

// MessagesOut implements switchboard.Observer.
func (x *Metrics) MessagesOut(typ string, count, bytes int) {
	if count > 0 {
		x.msgOut.get(typ).Add(float64(count))
	}
	if bytes > 0 {
		x.bytesOut.Add(float64(bytes))
	}
}

// Fanout implements switchboard.Observer.
func (x *Metrics) Fanout(kind switchboard.TargetKind, recipients int, d time.Duration) {
	var t, r prometheus.Observer
	if int(kind) < len(x.fanoutTime) {
		t, r = x.fanoutTime[kind], x.fanoutRcpt[kind]
	}
	if t == nil { // a target this package does not know yet
		t, r = x.fanoutTimeV.WithLabelValues(otherLabel), x.fanoutRcptV.WithLabelValues(otherLabel)
	}
	t.Observe(d.Seconds())
	r.Observe(float64(recipients))
}

// SlowConsumer implements switchboard.Observer.
func (x *Metrics) SlowConsumer(reason string) { x.slow.get(reason).Inc() }

// RateLimited implements switchboard.Observer.
func (x *Metrics) RateLimited() { x.rateLimitd.Inc() }

// AuthFailure implements switchboard.Observer.
func (x *Metrics) AuthFailure(reason string) { x.authFail.get(reason).Inc() }

// closedCounters are the children of a CounterVec for a fixed set of label values, made
// up front; any other value counts as "other". For labels a client chooses.
type closedCounters struct {
	known map[string]prometheus.Counter // read-only after construction
	other prometheus.Counter
}

func newClosedCounters(vec *prometheus.CounterVec, values []string) closedCounters {
	s := closedCounters{known: make(map[string]prometheus.Counter, len(values)), other: vec.WithLabelValues(otherLabel)}
	for _, v := range values {
		s.known[v] = vec.WithLabelValues(v)
	}
	return s
}

func (s *closedCounters) get(v string) prometheus.Counter {
	if c, ok := s.known[v]; ok {
		return c
	}
	return s.other
}

// openCounters are the children of a CounterVec for label values set by the application's
// code: the known ones are made up front, and up to maxOpenValues others are added as they
// appear (copy on write, so that lookups take no lock); beyond that they count as "other".
type openCounters struct {
	vec   *prometheus.CounterVec
	known map[string]prometheus.Counter // read-only after construction
	mu    sync.Mutex
	added atomic.Pointer[map[string]prometheus.Counter]
}

func newOpenCounters(vec *prometheus.CounterVec, values []string) *openCounters {
	s := &openCounters{vec: vec, known: make(map[string]prometheus.Counter, len(values))}
	for _, v := range values {
		s.known[v] = vec.WithLabelValues(v)
	}
	return s
}

func (s *openCounters) get(v string) prometheus.Counter {
	if c, ok := s.known[v]; ok {
		return c
	}
	if p := s.added.Load(); p != nil {
		if c, ok := (*p)[v]; ok {
			return c
		}
	}
	return s.add(v)
}

func (s *openCounters) add(v string) prometheus.Counter {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur map[string]prometheus.Counter
	if p := s.added.Load(); p != nil {
		cur = *p
	}
	if c, ok := cur[v]; ok {
		return c
	}
	if len(cur) >= maxOpenValues {
		v = otherLabel
		if c, ok := cur[v]; ok {
			return c
		}
	}
	next := make(map[string]prometheus.Counter, len(cur)+1)
	for k, c := range cur {
		next[k] = c
	}
	c := s.vec.WithLabelValues(v)
	next[v] = c
	s.added.Store(&next)
	return c
}
