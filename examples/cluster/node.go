package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/switchboardrt/switchboard"
	sbredis "github.com/switchboardrt/switchboard/adapters/redis"
)

// node is one Switchboard node: a Manager with its own Redis broker and HTTP server.
type node struct {
	name   string
	m      *switchboard.Manager
	broker *sbredis.Broker
	srv    *http.Server
	ln     net.Listener
	log    *slog.Logger
	done   chan error // receives Serve's result
}

// nodeConfig is what startNode needs to start a node.
type nodeConfig struct {
	Name     string // the node's ID in the cluster and in logs, e.g. "node1"
	Addr     string // listen address; port 0 picks a free port
	RedisURL string
	Prefix   string // the same on every node of the cluster
	Logger   *slog.Logger
}

// startNode listens on cfg.Addr and serves /ws, POST /publish, GET /nodes and
// GET /presence until Shutdown.
func startNode(cfg nodeConfig) (*node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("node", cfg.Name)
	b, err := sbredis.New(sbredis.Options{URL: cfg.RedisURL, Prefix: cfg.Prefix, Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	n := &node{name: cfg.Name, broker: b, ln: ln, log: log, done: make(chan error, 1)}
	n.m = switchboard.New(switchboard.Config{
		Broker:   b,
		NodeID:   cfg.Name,
		Logger:   log,
		Observer: fanoutLogger{log: log},
		OnConnect: func(c *switchboard.Conn) {
			log.Info("client connected", "client", c.ID())
		},
		OnDisconnect: func(c *switchboard.Conn, code int, reason string) {
			log.Info("client disconnected", "client", c.ID(), "code", code)
		},
	})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", n.m)
	mux.HandleFunc("POST /publish", n.publish)
	mux.HandleFunc("GET /nodes", n.nodes)
	mux.HandleFunc("GET /presence", n.presence)
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { n.done <- n.srv.Serve(ln) }()
	log.Info("listening", "ws", "ws://"+n.Addr()+"/ws", "publish", "http://"+n.Addr()+"/publish?topic=T")
	return n, nil
}

// Addr is the address the node listens on, with the port it got.
func (n *node) Addr() string { return n.ln.Addr().String() }

// publish handles POST /publish?topic=T: the body, a JSON object, becomes the data of a
// DATA message (resource = the "resource" parameter, default the topic) published to T
// through this node's broker.
func (n *node) publish(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		http.Error(w, "missing ?topic=", http.StatusBadRequest)
		return
	}
	resource := r.URL.Query().Get("resource")
	if resource == "" {
		resource = topic
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		http.Error(w, "body must be a JSON object", http.StatusBadRequest)
		return
	}
	msg, err := switchboard.NewData(resource, json.RawMessage(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := n.m.Publish(r.Context(), topic, msg); err != nil {
		n.log.Error("publish failed", "topic", topic, "err", err)
		http.Error(w, "publish failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	n.log.Info("published", "topic", topic, "id", msg.ID)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"published_by\":%q,\"topic\":%q,\"id\":%q}\n", n.name, topic, msg.ID)
}

// Shutdown stops taking requests, then closes every WebSocket (1001) and the broker.
func (n *node) Shutdown(ctx context.Context) error {
	err := n.srv.Shutdown(ctx)
	if e := <-n.done; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if e := n.m.Shutdown(ctx); e != nil && err == nil {
		err = e
	}
	n.log.Info("stopped")
	return err
}

// fanoutLogger is a switchboard.Observer that logs the publications a node delivers to
// its own clients; it ignores the other events.
type fanoutLogger struct{ log *slog.Logger }

func (o fanoutLogger) Fanout(kind switchboard.TargetKind, recipients int, d time.Duration) {
	if recipients > 0 {
		o.log.Info("delivered to local clients", "kind", kind.String(), "recipients", recipients)
	}
}
func (fanoutLogger) HandshakeRejected(string)     {}
func (fanoutLogger) ConnectionOpened(string)      {}
func (fanoutLogger) ConnectionClosed(int)         {}
func (fanoutLogger) MessageIn(string, int)        {}
func (fanoutLogger) MessagesOut(string, int, int) {}
func (fanoutLogger) SlowConsumer(string)          {}
func (fanoutLogger) RateLimited()                 {}
func (fanoutLogger) AuthFailure(string)           {}
