package switchboard

import (
	"context"
	"sync"
)

// TargetKind says who a Publication is for.
type TargetKind uint8

// Publication targets.
const (
	TargetAll    TargetKind = iota + 1 // every connection
	TargetTopic                        // the subscribers of Publication.Topic
	TargetUsers                        // every connection of each of Publication.Users
	TargetClient                       // the connection whose ID is Publication.Client
)

// Publication is one message on its way to its recipients, as handed to a Broker.
type Publication struct {
	Kind    TargetKind
	Topic   string   // with TargetTopic
	Users   []string // with TargetUsers
	Client  string   // with TargetClient
	Message *Message
}

// Broker carries publications to every node of a cluster, including the one publishing.
// Each node's Manager hands what it publishes to Publish, and the broker calls the deliver
// function given to Start with every publication that reaches the node, which fans it out to
// the node's local connections.
//
// The in-memory broker (the default) delivers synchronously in the publishing goroutine.
// Implementations must be safe for concurrent use.
type Broker interface {
	// Start connects the broker to its node. It is called once, by New.
	Start(deliver func(*Publication)) error
	// Publish carries p to every node that has recipients for it. An error means the
	// publication may not have been delivered anywhere.
	Publish(ctx context.Context, p *Publication) error
	// SubscribeTopic tells the broker that this node has local subscribers of topic, and
	// UnsubscribeTopic that the last one left; a cluster broker carries a topic's
	// publications only to nodes with interest.
	SubscribeTopic(ctx context.Context, topic string) error
	UnsubscribeTopic(ctx context.Context, topic string) error
	// Close releases the broker's resources. It is called by Manager.Shutdown.
	Close() error
}

// MemoryBroker is the single-node Broker: Publish delivers to the local node at once. It is
// a HistoryBroker too: it keeps topic history in memory (history_memory.go).
type MemoryBroker struct {
	mu      sync.RWMutex
	deliver func(*Publication)
	hist    memHistory
}

// NewMemoryBroker returns a Broker for a single node.
func NewMemoryBroker() *MemoryBroker { return &MemoryBroker{} }

// Start implements Broker.
func (b *MemoryBroker) Start(deliver func(*Publication)) error {
	b.mu.Lock()
	b.deliver = deliver
	b.mu.Unlock()
	b.hist.reopen()
	return nil
}

// Publish implements Broker; it delivers p before returning.
func (b *MemoryBroker) Publish(ctx context.Context, p *Publication) error {
	b.mu.RLock()
	deliver := b.deliver
	b.mu.RUnlock()
	if deliver == nil {
		return ErrShutdown
	}
	deliver(p)
	return nil
}

// SubscribeTopic implements Broker; a single node needs no bookkeeping.
func (b *MemoryBroker) SubscribeTopic(context.Context, string) error { return nil }

// UnsubscribeTopic implements Broker.
func (b *MemoryBroker) UnsubscribeTopic(context.Context, string) error { return nil }

// Close implements Broker. It drops the history and stops its sweeper.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	b.deliver = nil
	b.mu.Unlock()
	b.hist.close()
	return nil
}
