package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/metrics"
)

// Observability of the server: Prometheus metrics at /metrics (--metrics, on by default)
// and the Go profiler under /debug/pprof/ (--pprof, off by default).

// observability holds the server's metrics; both fields are nil with --metrics=false.
type observability struct {
	registry *prometheus.Registry
	metrics  *metrics.Metrics
}

// observabilityFlags registers the flags of this file; serveCLI calls it last.
func observabilityFlags(c *cli, o *options) {
	c.section = "Observability"
	c.boolVar(&o.Metrics, "metrics", envName("metrics"),
		"serve Prometheus metrics at GET /metrics: the switchboard_* metrics (connections, "+
			"messages, fan-out, slow consumers, rate limiting, authentication failures) and "+
			"the Go runtime and process metrics; --metrics=false turns it off. Anyone who can "+
			"reach the port can read them: keep /metrics off the public side of the proxy")
	c.boolVar(&o.Pprof, "pprof", envName("pprof"),
		"serve the Go profiler (net/http/pprof) under /debug/pprof/. It shows the program's "+
			"internals and costs CPU while a profile runs: enable it only where the port is "+
			"not reachable from the internet")
}

// initObservability creates the metrics and sets cfg.Observer, before the manager is
// created. It does nothing with --metrics=false.
func (s *server) initObservability(cfg *switchboard.Config) error {
	if !s.opts.Metrics {
		return nil
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}
	s.obs = observability{registry: reg, metrics: m}
	cfg.Observer = m
	return nil
}

// watch adds the manager's gauges (connections by state, topics, subscriptions) to the
// metrics, once the manager exists.
func (o observability) watch(m *switchboard.Manager) {
	if o.metrics != nil {
		o.metrics.Watch(m)
	}
}

// observabilityRoutes mounts /metrics and /debug/pprof/ on mux, as the options say. The
// profiler's handlers are mounted on mux itself: nothing is served from
// http.DefaultServeMux, where importing net/http/pprof also registers them.
func (s *server) observabilityRoutes(mux *http.ServeMux) {
	if s.obs.registry != nil {
		h := promhttp.HandlerFor(s.obs.registry, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
			// promhttp_metric_handler_errors_total, on the same registry.
			Registry: s.obs.registry,
		})
		mux.Handle("/metrics", allow(http.MethodGet, h.ServeHTTP))
	}
	if s.opts.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves the named profiles: heap, goroutine, …
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}
