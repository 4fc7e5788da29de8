package main

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/switchboardrt/switchboard"
)

// nodes handles GET /nodes: the live nodes of the cluster as this node sees them, itself
// first, from the cluster state the Redis broker keeps (Manager.Nodes).
func (n *node) nodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := n.m.Nodes(r.Context())
	if err != nil {
		http.Error(w, "cluster state unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{"node": n.m.NodeID(), "nodes": nodes})
}

// presence handles GET /presence?topic=T: the subscribers of T on every node, each with
// the node that holds its connection (Manager.Presence).
func (n *node) presence(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		http.Error(w, "missing ?topic=", http.StatusBadRequest)
		return
	}
	clients, err := n.m.Presence(r.Context(), topic)
	if errors.Is(err, switchboard.ErrInvalidTopic) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, "cluster state unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{"topic": topic, "clients": clients})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
