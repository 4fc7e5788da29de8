package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// --node-heartbeat and --node-ttl (or their environment variables) reach the options of
// both cluster brokers; unset, the brokers keep their own defaults (zero).
func TestClusterTimingFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		every, ttl time.Duration
	}{
		{"unset", nil, nil, 0, 0},
		{"flags", []string{"--node-heartbeat", "500ms", "--node-ttl", "1500ms"}, nil, 500 * time.Millisecond, 1500 * time.Millisecond},
		{"environment", nil, map[string]string{"SWITCHBOARD_NODE_HEARTBEAT": "1s", "SWITCHBOARD_NODE_TTL": "5s"}, time.Second, 5 * time.Second},
		{"ttl alone, above the default heartbeat's double", []string{"--node-ttl", "4s"}, nil, 0, 4 * time.Second},
		{"heartbeat alone", []string{"--node-heartbeat", "3s"}, nil, 3 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _, err := parseServeOptions(append(tc.args, "--broker", "nats://127.0.0.1:1"), envMap(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			r := redisOptions(o, discardLogger)
			if r.Cluster.HeartbeatInterval != tc.every || r.Cluster.NodeTTL != tc.ttl {
				t.Errorf("redis options %+v, want heartbeat %v, ttl %v", r.Cluster, tc.every, tc.ttl)
			}
			n := natsOptions(o, discardLogger)
			if n.HeartbeatInterval != tc.every || n.NodeTTL != tc.ttl {
				t.Errorf("nats options: heartbeat %v, ttl %v, want %v, %v", n.HeartbeatInterval, n.NodeTTL, tc.every, tc.ttl)
			}
			if r.URL != o.Broker || n.URL != o.Broker {
				t.Errorf("broker URL %q / %q, want %q", r.URL, n.URL, o.Broker)
			}
		})
	}
}

// Cluster timings the brokers cannot honour are usage errors naming the flag.
func TestClusterTimingFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"negative heartbeat", []string{"--node-heartbeat", "-1s"}, "node-heartbeat"},
		{"negative ttl", []string{"--node-ttl", "-1s"}, "node-ttl"},
		{"ttl below twice the default heartbeat", []string{"--node-ttl", "3s"}, "node-ttl"},
		{"ttl below twice the heartbeat", []string{"--node-heartbeat", "1s", "--node-ttl", "1500ms"}, "node-ttl"},
		{"not a duration", []string{"--node-ttl", "soon"}, "node-ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseServeOptions(tc.args, noEnv)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}
}
