package metrics_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/metrics"
)

// A Manager observed by the metrics, on a registry of the application's, served at
// /metrics. Every known label value is exported from the start, at 0.
func Example() {
	reg := prometheus.NewRegistry()
	obs, err := metrics.New(reg)
	if err != nil {
		log.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{Observer: obs})
	defer m.Shutdown(context.Background())
	obs.Watch(m) // connections by state, topics, subscriptions: read at each scrape

	mux := http.NewServeMux()
	mux.Handle("/ws", m)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	ev, err := switchboard.NewEvent("tick", nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Broadcast(context.Background(), ev); err != nil {
		log.Fatal(err)
	}

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		fmt.Println(f.GetName(), f.GetType())
		if f.GetName() == "switchboard_fanout_recipients" {
			for _, s := range f.GetMetric() {
				if s.GetLabel()[0].GetValue() == "all" {
					fmt.Println("  target=all: count", s.GetHistogram().GetSampleCount(), "sum", s.GetHistogram().GetSampleSum())
				}
			}
		}
	}
	// Series are bounded: the connections gauge has one per state.
	fmt.Println(testutil.CollectAndCount(obs, "switchboard_connections"))
	// Output:
	// switchboard_auth_failures_total COUNTER
	// switchboard_bytes_in_total COUNTER
	// switchboard_bytes_out_total COUNTER
	// switchboard_connections GAUGE
	// switchboard_connections_by_subprotocol GAUGE
	// switchboard_connections_closed_total COUNTER
	// switchboard_connections_opened_total COUNTER
	// switchboard_fanout_duration_seconds HISTOGRAM
	// switchboard_fanout_recipients HISTOGRAM
	//   target=all: count 1 sum 0
	// switchboard_handshakes_rejected_total COUNTER
	// switchboard_history_gaps_filled_total COUNTER
	// switchboard_history_gaps_lost_total COUNTER
	// switchboard_messages_in_total COUNTER
	// switchboard_messages_out_total COUNTER
	// switchboard_rate_limited_total COUNTER
	// switchboard_slow_consumers_total COUNTER
	// switchboard_subscriptions GAUGE
	// switchboard_topics GAUGE
	// 8
}
