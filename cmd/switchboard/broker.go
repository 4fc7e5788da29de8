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

// defaultNodeHeartbeat is the heartbeat interval both cluster brokers use when
// --node-heartbeat is unset; their NodeTTL defaults to three of it.
const defaultNodeHeartbeat = 2 * time.Second

// brokerFlags registers --broker, --broker-prefix, --node-id and the cluster timing flags.
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
	c.clusterDuration(&o.NodeHeartbeat, "node-heartbeat",
		"with a cluster broker, how often this node announces itself to the others; all "+
			"nodes of a cluster should use the same value (default 0: "+defaultNodeHeartbeat.String()+")")
	c.clusterDuration(&o.NodeTTL, "node-ttl",
		"with a cluster broker, how long after its last heartbeat a node that stopped without "+
			"shutting down (crash, SIGKILL) is still listed by the others; at least twice "+
			"--node-heartbeat (default 0: three times --node-heartbeat)")
}

// clusterDuration registers a non-negative duration flag whose 0 leaves the broker's default.
func (c *cli) clusterDuration(p *time.Duration, name, usage string) {
	c.fs.Var((*durationValue)(p), name, usage)
	c.bind(name, envName(name), "")
	c.nonNegative[name] = func() float64 { return float64(*p) }
}

// checkBrokerOptions rejects cluster timings the brokers cannot honour.
func checkBrokerOptions(o options) error {
	every := o.NodeHeartbeat
	if every == 0 {
		every = defaultNodeHeartbeat
	}
	if o.NodeTTL != 0 && o.NodeTTL < 2*every {
		return usageError{fmt.Errorf("--node-ttl (%v) must be at least twice --node-heartbeat (%v): "+
			"one late heartbeat must not make a live node look dead", o.NodeTTL, every)}
	}
	return nil
}

// newBroker returns the broker the --broker URL of o names, or nil for the in-memory
// default.
func newBroker(o options, log *slog.Logger) (switchboard.Broker, error) {
	url := o.Broker
	switch {
	case url == "" || url == "memory":
		return nil, nil
	case strings.HasPrefix(url, "redis://") || strings.HasPrefix(url, "rediss://"):
		b, err := sbredis.New(redisOptions(o, log))
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", url, err)
		}
		return b, nil
	case strings.HasPrefix(url, "nats://") || strings.HasPrefix(url, "tls://"):
		b, err := sbnats.New(natsOptions(o, log))
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", url, err)
		}
		return b, nil
	}
	return nil, usageError{fmt.Errorf("--broker %q: want redis://…, rediss://…, nats://… or memory", url)}
}

// redisOptions are the Redis broker's options for o; zero timings leave the broker's
// defaults.
func redisOptions(o options, log *slog.Logger) sbredis.Options {
	return sbredis.Options{URL: o.Broker, Prefix: o.BrokerPrefix, Logger: log,
		Cluster: sbredis.ClusterOptions{HeartbeatInterval: o.NodeHeartbeat, NodeTTL: o.NodeTTL}}
}

// natsOptions are the NATS broker's options for o; zero timings leave the broker's
// defaults.
func natsOptions(o options, log *slog.Logger) sbnats.Options {
	return sbnats.Options{URL: o.Broker, Prefix: o.BrokerPrefix, Logger: log,
		HeartbeatInterval: o.NodeHeartbeat, NodeTTL: o.NodeTTL}
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
