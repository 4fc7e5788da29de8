package main

import (
	"net/http"
	"testing"
)

// GET /api/nodes and GET /api/presence on a single node: the node (named by --node-id)
// with its counts, and a topic's subscribers with their node; bad requests get JSON errors.
func TestNodesAndPresenceAPI(t *testing.T) {
	o := testOptions()
	o.Config.NodeID = "solo"
	_, ts := startServer(t, o)
	c := dial(t, ts)
	c.authenticate("42")
	c.subscribe("news")
	dial(t, ts).roundTrip()

	r := do(t, ts, http.MethodGet, "/api/nodes", testAPIKey, "")
	nodes, _ := r.body["nodes"].([]any)
	if r.status != http.StatusOK || r.body["node"] != "solo" || len(nodes) != 1 {
		t.Fatalf("GET /api/nodes: %d %s", r.status, r.raw)
	}
	n := nodes[0].(map[string]any)
	if n["id"] != "solo" || n["connections"] != 2.0 || n["users"] != 1.0 || n["topics"] != 1.0 || n["subscriptions"] != 1.0 {
		t.Fatalf("GET /api/nodes: node %v, want solo with 2 connections, 1 user, 1 topic, 1 subscription", n)
	}

	r = do(t, ts, http.MethodGet, "/api/presence?topic=news", testAPIKey, "")
	clients, _ := r.body["clients"].([]any)
	if r.status != http.StatusOK || r.body["topic"] != "news" || len(clients) != 1 {
		t.Fatalf("GET /api/presence: %d %s", r.status, r.raw)
	}
	if p := clients[0].(map[string]any); p["user_id"] != "42" || p["node"] != "solo" || p["client_id"] == "" {
		t.Fatalf("GET /api/presence: client %v", p)
	}
	r = do(t, ts, http.MethodGet, "/api/presence?topic=empty", testAPIKey, "")
	if clients, ok := r.body["clients"].([]any); r.status != http.StatusOK || !ok || len(clients) != 0 {
		t.Fatalf("presence of a topic without subscribers: %d %s, want an empty list", r.status, r.raw)
	}

	for _, tc := range []struct {
		method, path, key string
		status            int
		code              string
	}{
		{http.MethodGet, "/api/presence", testAPIKey, http.StatusBadRequest, "missing_topic"},
		{http.MethodGet, "/api/presence?topic=no+spaces", testAPIKey, http.StatusBadRequest, "invalid_topic"},
		{http.MethodGet, "/api/nodes", "", http.StatusUnauthorized, "unauthorized"},
		{http.MethodGet, "/api/presence?topic=news", "wrong", http.StatusUnauthorized, "unauthorized"},
		{http.MethodPost, "/api/nodes", testAPIKey, http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		r := do(t, ts, tc.method, tc.path, tc.key, "")
		if r.status != tc.status || r.body["error"] != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.status, r.raw, tc.status, tc.code)
		}
	}
}
