// Package notifier lets a local application's backend notify its own front end in the
// plain notifier format: every frame is exactly {"type": "<snake_case type>", "data": <payload>}.
//
// The front end opens a WebSocket to the endpoint returned by Aggregator.Handler (usually
// /ws on the same port as the application's REST API) and sends any message, even {}, to
// subscribe. From then on it receives every notification the backend sends through the
// Aggregator (Warning, Error, Send), and every broadcast of the manager (a DATA, EVENT or
// NOTIFICATION becomes type "data", "event" or "notification", its payload the data).
//
// While no front end is subscribed, notifications wait in a bounded queue (oldest dropped
// first, and counted) and are delivered, in order, to the first front end that subscribes.
// Front ends that cannot hold a socket drain the same queue over REST with
// Aggregator.MessagesHandler (GET /api/messages).
//
// The connection is kept alive with WebSocket ping frames (the codec has no PING message);
// browsers answer them by themselves. See docs/notifier.md for the whole contract.
package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/switchboardrt/switchboard"
)

// Defaults of Options.
const (
	// DefaultQueueSize is the default of Options.QueueSize.
	DefaultQueueSize = 500
	// DefaultTopic is the default of Options.Topic.
	DefaultTopic = "notifier"
)

// Verbosity values of a "legacy" message.
const (
	VerbosityWarning = "warning"
	VerbosityError   = "error"
)

// TypeLegacy is the type of the messages sent by Warning and Error:
// {"type": "legacy", "data": {"verbosity": "warning"|"error", "value": "…"}}.
const TypeLegacy = "legacy"

// ErrBadType reports a message type that is not snake_case ([a-z0-9_]+).
var ErrBadType = errors.New("notifier: message type must be snake_case ([a-z0-9_]+)")

// Options configures an Aggregator. The zero value is a good default.
type Options struct {
	// QueueSize caps the notifications kept while no front end is subscribed; when it is
	// full the oldest is dropped (see Aggregator.Dropped). Default 500. The whole backlog
	// is handed to the first subscriber's send queue at once, so QueueSize is capped at
	// half the manager's Config.SendQueueSize (default 256, so 128): raise SendQueueSize
	// to keep more. Aggregator.QueueSize returns the effective bound.
	QueueSize int
	// Topic is the manager topic notifier connections subscribe to, and that Send
	// publishes on. Default "notifier". Clients of other endpoints of the manager may
	// subscribe to it too and get the notifications in their own format.
	Topic string
}

// Aggregator collects the backend's notifications and delivers them to the front end:
// live to the subscribed notifier connections, or queued while there is none. Its methods
// are safe for concurrent use.
type Aggregator struct {
	m       *switchboard.Manager
	topic   string
	size    int
	codec   Codec
	handler http.Handler

	// mu orders Send against the subscribe-and-flush of a new front end: a notification
	// is either queued before the flush or published after the subscription, never both,
	// never neither.
	mu      sync.Mutex
	queue   []*switchboard.Message // oldest first
	dropped uint64
	subs    map[*switchboard.Conn]struct{} // subscribed notifier connections
}

// New returns an Aggregator that sends through m. Mount Handler for the front end's
// WebSocket and, if you want REST polling, MessagesHandler at GET /api/messages.
func New(m *switchboard.Manager, opts Options) *Aggregator {
	size := opts.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	cfg := m.Config()
	if sq := cfg.SendQueueSize; sq > 0 && size > max(sq/2, 1) {
		cfg.Logger.Warn("notifier: QueueSize capped at half of Config.SendQueueSize",
			"queue_size", size, "send_queue_size", sq, "effective", max(sq/2, 1))
		size = max(sq/2, 1)
	}
	topic := opts.Topic
	if topic == "" {
		topic = DefaultTopic
	}
	a := &Aggregator{m: m, topic: topic, size: size, subs: map[*switchboard.Conn]struct{}{}}
	a.handler = m.Endpoint(switchboard.EndpointConfig{Codec: a.codec, Protocol: a.Protocol()})
	return a
}

// Handler returns the WebSocket endpoint of the front end (mount it at /ws): an endpoint
// of the manager in the notifier format (Codec) and protocol (Protocol). It shares the
// manager's origin check, limits, keepalive and handshake authentication.
func (a *Aggregator) Handler() http.Handler { return a.handler }

// Topic returns the manager topic of the notifications.
func (a *Aggregator) Topic() string { return a.topic }

// QueueSize returns the effective bound of the queue (see Options.QueueSize).
func (a *Aggregator) QueueSize() int { return a.size }

// Warning sends {"type": "legacy", "data": {"verbosity": "warning", "value": text}}.
func (a *Aggregator) Warning(text string) error { return a.legacy(VerbosityWarning, text) }

// Error sends {"type": "legacy", "data": {"verbosity": "error", "value": text}}.
func (a *Aggregator) Error(text string) error { return a.legacy(VerbosityError, text) }

func (a *Aggregator) legacy(verbosity, text string) error {
	return a.Send(TypeLegacy, struct {
		Verbosity string `json:"verbosity"`
		Value     string `json:"value"`
	}{verbosity, text})
}

// Send sends the notification {"type": typ, "data": data} to the subscribed front ends,
// or queues it when there is none. typ must be snake_case ([a-z0-9_]+); data is any
// value encoding/json marshals (an object, a list, a json.RawMessage…); nil gives {}.
// It returns an error wrapping ErrBadType for a bad type, the marshalling error for bad
// data, and the manager's error (switchboard.ErrShutdown) when it cannot publish.
func (a *Aggregator) Send(typ string, data any) error {
	if !validType(typ) {
		return fmt.Errorf("%w: %q", ErrBadType, typ)
	}
	raw, err := marshal(data)
	if err != nil {
		return fmt.Errorf("notifier: %s data: %w", typ, err)
	}
	msg := &switchboard.Message{Type: typ, Payload: raw}

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.subs) > 0 {
		// Published under mu: a front end subscribing now waits, so it gets this message
		// after its backlog, not before.
		return a.m.Publish(context.Background(), a.topic, msg)
	}
	if len(a.queue) >= a.size {
		n := len(a.queue) - a.size + 1
		clear(a.queue[:n])
		a.queue = a.queue[n:]
		a.dropped += uint64(n)
	}
	a.queue = append(a.queue, msg)
	return nil
}

// Pending returns how many notifications are queued, waiting for a front end.
func (a *Aggregator) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

// Dropped returns how many queued notifications were dropped, oldest first, because the
// queue was full.
func (a *Aggregator) Dropped() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}

// Subscribers returns how many notifier connections are subscribed on this node.
func (a *Aggregator) Subscribers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.subs)
}

// drain empties the queue and returns what it held, oldest first.
func (a *Aggregator) drain() []*switchboard.Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queue
	a.queue = nil
	return q
}

// MessagesHandler returns the REST handler of the queue (mount it at GET /api/messages),
// for front ends that cannot hold a socket. GET answers 200 with a JSON array of the
// queued notifications, oldest first, each exactly {"type": …, "data": …}, and empties
// the queue: each notification is returned once. While a WebSocket front end is
// subscribed, notifications go to it and the array is empty. Other methods get 405.
func (a *Aggregator) MessagesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"error":"method_not_allowed","message":"use GET"}` + "\n"))
			return
		}
		q := a.drain()
		body := make([]byte, 0, 64*len(q)+4)
		body = append(body, '[')
		for i, msg := range q {
			if i > 0 {
				body = append(body, ',')
			}
			var err error
			if body, err = a.codec.Encode(body, msg); err != nil {
				// Send validated the message: this cannot happen.
				a.m.Config().Logger.Error("notifier: encoding a queued message", "type", msg.Type, "err", err)
			}
		}
		body = append(body, ']', '\n')
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
}

// validType reports whether typ is snake_case: [a-z0-9_]+.
func validType(typ string) bool {
	if typ == "" {
		return false
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// marshal encodes data as compact JSON without HTML escaping.
func marshal(data any) (json.RawMessage, error) {
	if data == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
