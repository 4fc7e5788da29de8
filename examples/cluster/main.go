// Command cluster runs three Switchboard nodes in one process, each a separate Manager
// with its own Redis broker and HTTP server, to show a publication made on one node
// reaching a client connected to another. Every node serves:
//
//	GET  /ws                 the WebSocket endpoint (wire protocol v1)
//	POST /publish?topic=T    body: a JSON object, published to T as a DATA message
//	GET  /nodes              the live nodes of the cluster
//	GET  /presence?topic=T   the subscribers of T on every node
//
// See README.md.
//
// Usage:
//
//	go run ./examples/cluster [--addrs 127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103]
//	                          [--redis redis://127.0.0.1:6379/0] [--prefix cluster-example]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	addrs := flag.String("addrs", "127.0.0.1:8101,127.0.0.1:8102,127.0.0.1:8103", "comma-separated listen addresses, one node each")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis `url` shared by the nodes")
	prefix := flag.String("prefix", "cluster-example", "Redis channel `prefix` shared by the nodes")
	flag.Parse()
	if err := run(strings.Split(*addrs, ","), *redisURL, *prefix); err != nil {
		slog.Error("cluster: " + err.Error())
		os.Exit(1)
	}
}

func run(addrs []string, redisURL, prefix string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nodes, err := startCluster(addrs, redisURL, prefix, slog.Default())
	if err != nil {
		return err
	}
	slog.Info("cluster: ready; press Ctrl-C to stop", "nodes", len(nodes), "redis", redisURL, "prefix", prefix)
	<-ctx.Done()
	slog.Info("cluster: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return stopCluster(sctx, nodes)
}

// startCluster starts one node per address, named node1, node2, …, after checking that
// Redis answers. On error, the nodes already started are stopped.
func startCluster(addrs []string, redisURL, prefix string, log *slog.Logger) ([]*node, error) {
	var nodes []*node
	fail := func(err error) ([]*node, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopCluster(ctx, nodes)
		return nil, err
	}
	for i, addr := range addrs {
		n, err := startNode(nodeConfig{
			Name:     fmt.Sprintf("node%d", i+1),
			Addr:     strings.TrimSpace(addr),
			RedisURL: redisURL,
			Prefix:   prefix,
			Logger:   log,
		})
		if err != nil {
			return fail(fmt.Errorf("node%d on %s: %w", i+1, addr, err))
		}
		nodes = append(nodes, n)
		if i == 0 {
			hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := n.broker.Health(hctx)
			cancel()
			if err != nil {
				return fail(fmt.Errorf("redis at %s is unreachable (start one with `redis-server` or pass --redis): %w", redisURL, err))
			}
		}
	}
	return nodes, nil
}

// stopCluster shuts every node down, in parallel.
func stopCluster(ctx context.Context, nodes []*node) error {
	errc := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errc <- n.Shutdown(ctx) }()
	}
	var errs []error
	for range nodes {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}
