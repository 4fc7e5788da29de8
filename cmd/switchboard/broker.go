package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/switchboardrt/switchboard"
	sbnats "github.com/switchboardrt/switchboard/adapters/nats"
	sbredis "github.com/switchboardrt/switchboard/adapters/redis"
)

// brokerFlags registers --broker and --broker-prefix.
func brokerFlags(c *cli, o *options) {
	c.stringVar(&o.Broker, "broker", envName("broker"),
		"`url` of the broker that carries publications between nodes: redis://host:6379/0 "+
			"(Redis Pub/Sub) or nats://host:4222 (core NATS); default: in memory, one node")
	c.stringVar(&o.BrokerPrefix, "broker-prefix", envName("broker-prefix"),
		"`prefix` of the broker's channel or subject names; the nodes of one cluster share it "+
			"(default \"switchboard\")")
	c.stringVar(&o.Config.NodeID, "node-id", envName("node-id"),
		"`name` of this node in the cluster, shown by /api/nodes and in presence; unique per "+
			"node (default: a random UUID at each start)")
}

// newBroker returns the broker a --broker URL names, or nil for the in-memory default.
func newBroker(url, prefix string, log *slog.Logger) (switchboard.Broker, error) {
	switch {
	case url == "" || url == "memory":
		return nil, nil
	case strings.HasPrefix(url, "redis://") || strings.HasPrefix(url, "rediss://"):
		b, err := sbredis.New(sbredis.Options{URL: url, Prefix: prefix, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", url, err)
		}
		return b, nil
	case strings.HasPrefix(url, "nats://") || strings.HasPrefix(url, "tls://"):
		b, err := sbnats.New(sbnats.Options{URL: url, Prefix: prefix, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", url, err)
		}
		return b, nil
	}
	return nil, usageError{fmt.Errorf("--broker %q: want redis://…, rediss://…, nats://… or memory", url)}
}

// brokerHealth reports the broker's health, when it can tell.
func brokerHealth(ctx context.Context, b switchboard.Broker) error {
	h, ok := b.(interface{ Health(context.Context) error })
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return h.Health(ctx)
}
