package main

import (
	"errors"
	"net/http"
	"strings"

	"github.com/switchboardrt/switchboard"
)

// clusterRoutes mounts the read-only cluster API: GET /api/nodes and GET /api/presence.
func (s *server) clusterRoutes(mux *http.ServeMux) {
	mux.Handle("/api/nodes", s.api(http.MethodGet, s.handleNodes))
	mux.Handle("/api/presence", s.api(http.MethodGet, s.handlePresence))
}

// handleNodes serves GET /api/nodes: {"node": this node's ID, "nodes": [NodeInfo…]}, the
// live nodes of the cluster with this one first (only this one without a cluster broker).
func (s *server) handleNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.manager.Nodes(r.Context())
	if err != nil {
		s.clusterError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": s.manager.NodeID(), "nodes": nodes})
}

// handlePresence serves GET /api/presence?topic=T: {"topic", "clients": [{client_id,
// user_id, node}…]}, the subscribers of T on every live node.
func (s *server) handlePresence(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		writeError(w, http.StatusBadRequest, "missing_topic", "the topic query parameter is required: /api/presence?topic=news")
		return
	}
	clients, err := s.manager.Presence(r.Context(), topic)
	if err != nil {
		if errors.Is(err, switchboard.ErrInvalidTopic) {
			writeError(w, http.StatusBadRequest, "invalid_topic", strings.TrimPrefix(err.Error(), "switchboard: "))
			return
		}
		s.clusterError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"topic": topic, "clients": clients})
}

// clusterError answers 503 when the cluster state cannot be read (the broker is down).
func (s *server) clusterError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "canceled", "request canceled")
		return
	}
	s.log.Warn("api: cluster state unavailable", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusServiceUnavailable, "cluster_unavailable", "the cluster state cannot be read: "+err.Error())
}
