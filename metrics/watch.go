package metrics

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardrt/switchboard"
)

// states are the connection states exported by switchboard_connections, each even when no
// connection is in it.
var states = []switchboard.State{
	switchboard.StateInitializing,
	switchboard.StateConnecting,
	switchboard.StateConnected,
	switchboard.StateAuthenticating,
	switchboard.StateAuthenticated,
	switchboard.StateDisconnecting,
	switchboard.StateDisconnected,
	switchboard.StateError,
}

// stateLabel is the value of the state label: the state's name in lower case, e.g.
// "authenticated".
func stateLabel(s switchboard.State) string { return strings.ToLower(s.String()) }

// Watch adds m to the managers whose state is read at each scrape, for the gauges
// switchboard_connections{state}, switchboard_topics and switchboard_subscriptions. With
// several managers the figures add up; watching a manager twice has no effect. Before the
// first Watch the gauges are not exported. A watched manager stays referenced by x.
//
// A scrape walks every connection of m (Manager.StateCounts): a cost proportional to the
// connections, paid once per scrape, not on any hot path.
func (x *Metrics) Watch(m *switchboard.Manager) {
	if m == nil {
		return
	}
	c := x.watched
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.managers, m) {
		c.managers = append(c.managers, m)
	}
}

// managerCollector reads the gauges from the watched managers.
type managerCollector struct {
	connections   *prometheus.Desc
	topics        *prometheus.Desc
	subscriptions *prometheus.Desc

	mu       sync.Mutex
	managers []*switchboard.Manager
}

func newManagerCollector() *managerCollector {
	return &managerCollector{
		connections: prometheus.NewDesc(namespace+"_connections",
			"Live WebSocket connections, by state.", []string{"state"}, nil),
		topics: prometheus.NewDesc(namespace+"_topics",
			"Topics with at least one subscriber on this node.", nil, nil),
		subscriptions: prometheus.NewDesc(namespace+"_subscriptions",
			"Subscriptions, as (connection, topic) pairs, on this node.", nil, nil),
	}
}

func (c *managerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connections
	ch <- c.topics
	ch <- c.subscriptions
}

func (c *managerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	managers := slices.Clone(c.managers)
	c.mu.Unlock()
	if len(managers) == 0 {
		return
	}
	counts := make(map[switchboard.State]int, len(states))
	for _, s := range states {
		counts[s] = 0
	}
	topics, subs := 0, 0
	for _, m := range managers {
		for s, n := range m.StateCounts() {
			counts[s] += n
		}
		st := m.Stats()
		topics += st.Topics
		subs += st.Subscriptions
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(n), stateLabel(s))
	}
	ch <- prometheus.MustNewConstMetric(c.topics, prometheus.GaugeValue, float64(topics))
	ch <- prometheus.MustNewConstMetric(c.subscriptions, prometheus.GaugeValue, float64(subs))
}
