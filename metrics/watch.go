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

// subprotocols are the values of the subprotocol label exported even when no connection
// negotiated them: "none" for connections that asked for no subprotocol.
var subprotocols = []string{noSubprotocol, switchboard.SubprotocolV1, switchboard.SubprotocolV1Batch}

// noSubprotocol is the subprotocol label of connections that negotiated none.
const noSubprotocol = "none"

// Watch adds m to the managers whose state is read at each scrape, for the gauges
// switchboard_connections{state}, switchboard_connections_by_subprotocol{subprotocol},
// switchboard_topics and switchboard_subscriptions, and for the counters
// switchboard_history_gaps_filled_total and switchboard_history_gaps_lost_total (from
// Manager.Stats: GapsFilled, GapsLost). With
// several managers the figures add up; watching a manager twice has no effect. Before the
// first Watch the gauges are not exported. A watched manager stays referenced by x.
//
// The subprotocol label takes "none", the subprotocols of the default endpoint, and up to
// 16 others (from endpoints with subprotocols of their own); further ones count as "other".
//
// A scrape walks every connection of m (Manager.StateCounts, Manager.SubprotocolCounts): a cost proportional to the
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
	bySubproto    *prometheus.Desc
	topics        *prometheus.Desc
	subscriptions *prometheus.Desc
	gapsFilled    *prometheus.Desc
	gapsLost      *prometheus.Desc

	mu       sync.Mutex
	managers []*switchboard.Manager
	// subOpen holds the subprotocol label values seen beyond the known ones, at most
	// maxOpenValues (plus "other"); once seen, a value is exported at every scrape.
	subOpen map[string]bool
}

func newManagerCollector() *managerCollector {
	return &managerCollector{
		connections: prometheus.NewDesc(namespace+"_connections",
			"Live WebSocket connections, by state.", []string{"state"}, nil),
		bySubproto: prometheus.NewDesc(namespace+"_connections_by_subprotocol",
			"Live WebSocket connections, by negotiated subprotocol (\"none\" when the client asked "+
				"for none; beyond a bounded set, \"other\").", []string{"subprotocol"}, nil),
		topics: prometheus.NewDesc(namespace+"_topics",
			"Topics with at least one subscriber on this node.", nil, nil),
		subscriptions: prometheus.NewDesc(namespace+"_subscriptions",
			"Subscriptions, as (connection, topic) pairs, on this node.", nil, nil),
		gapsFilled: prometheus.NewDesc(namespace+"_history_gaps_filled_total",
			"Publications of topics with history that the broker did not deliver to this node, "+
				"delivered from the history instead.", nil, nil),
		gapsLost: prometheus.NewDesc(namespace+"_history_gaps_lost_total",
			"Publications this node missed that the history no longer held: its subscribers saw "+
				"a jump in seq.", nil, nil),
	}
}

func (c *managerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connections
	ch <- c.bySubproto
	ch <- c.topics
	ch <- c.subscriptions
	ch <- c.gapsFilled
	ch <- c.gapsLost
}

func (c *managerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock() // also guards subOpen; scrapes are rare
	if len(c.managers) == 0 {
		return
	}
	counts := make(map[switchboard.State]int, len(states))
	for _, s := range states {
		counts[s] = 0
	}
	bySub := make(map[string]int, len(subprotocols)+len(c.subOpen))
	for _, p := range subprotocols {
		bySub[p] = 0
	}
	for p := range c.subOpen {
		bySub[p] = 0
	}
	topics, subs := 0, 0
	var filled, lost uint64
	for _, m := range c.managers {
		for s, n := range m.StateCounts() {
			counts[s] += n
		}
		for p, n := range m.SubprotocolCounts() {
			bySub[c.subprotocolLabel(p)] += n
		}
		st := m.Stats()
		topics += st.Topics
		subs += st.Subscriptions
		filled += st.GapsFilled
		lost += st.GapsLost
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(n), stateLabel(s))
	}
	for p, n := range bySub {
		ch <- prometheus.MustNewConstMetric(c.bySubproto, prometheus.GaugeValue, float64(n), p)
	}
	ch <- prometheus.MustNewConstMetric(c.topics, prometheus.GaugeValue, float64(topics))
	ch <- prometheus.MustNewConstMetric(c.subscriptions, prometheus.GaugeValue, float64(subs))
	ch <- prometheus.MustNewConstMetric(c.gapsFilled, prometheus.CounterValue, float64(filled))
	ch <- prometheus.MustNewConstMetric(c.gapsLost, prometheus.CounterValue, float64(lost))
}

// subprotocolLabel returns the label value of a negotiated subprotocol, remembering the
// values beyond the known ones up to maxOpenValues. c.mu must be held.
func (c *managerCollector) subprotocolLabel(p string) string {
	if p == "" {
		return noSubprotocol
	}
	if slices.Contains(subprotocols, p) || c.subOpen[p] {
		return p
	}
	if c.subOpen == nil {
		c.subOpen = make(map[string]bool)
	}
	if len(c.subOpen) >= maxOpenValues {
		p = otherLabel
	}
	c.subOpen[p] = true
	return p
}
