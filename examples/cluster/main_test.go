package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

func TestPublishOnNode3ReachesClientOnNode1(t *testing.T) {
	url := testenv.RedisURL(t)
	prefix := fmt.Sprintf("cluster-example-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	nodes, err := startCluster([]string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}, url, prefix, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopCluster(ctx, nodes); err != nil {
			t.Errorf("stopCluster: %v", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+nodes[0].Addr()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	type frame struct {
		Type    string          `json:"type"`
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	}
	read := func() frame {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		_, b, err := ws.Read(rctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("bad frame %s: %v", b, err)
		}
		return f
	}

	sub := `{"type":"SUBSCRIBE","id":"1","payload":{"subscriptions":["news"]}}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	if f := read(); f.Type != "SUBSCRIBE_SUCCESS" {
		t.Fatalf("SUBSCRIBE answered with %s %s", f.Type, f.Payload)
	}

	resp, err := http.Post("http://"+nodes[2].Addr()+"/publish?topic=news", "application/json",
		strings.NewReader(`{"headline":"from node3"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"published_by":"node3"`) {
		t.Fatalf("publish via node3: %s %s", resp.Status, body)
	}

	f := read()
	if f.Type != "DATA" || f.Topic != "news" {
		t.Fatalf("got %s on %q, want DATA on news: %s", f.Type, f.Topic, f.Payload)
	}
	var p struct {
		Resource string `json:"resource"`
		Data     struct {
			Headline string `json:"headline"`
		} `json:"data"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Resource != "news" || p.Data.Headline != "from node3" {
		t.Fatalf("payload = %s", f.Payload)
	}
}

func TestPublishRejectsBadInput(t *testing.T) {
	url := testenv.RedisURL(t)
	prefix := fmt.Sprintf("cluster-example-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	nodes, err := startCluster([]string{"127.0.0.1:0"}, url, prefix, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopCluster(ctx, nodes)
	})
	for _, tc := range []struct{ query, body string }{
		{"", `{"a":1}`},
		{"?topic=news", `[1,2]`},
		{"?topic=news", `not json`},
		{"?topic=news", `null`},
	} {
		resp, err := http.Post("http://"+nodes[0].Addr()+"/publish"+tc.query, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /publish%s %s: %s, want 400", tc.query, tc.body, resp.Status)
		}
	}
}

// GET /nodes on any node lists the three nodes by name; GET /presence on node 3 lists a
// client subscribed on node 1, with its node; bad topics get 400.
func TestNodesAndPresenceAcrossNodes(t *testing.T) {
	url := testenv.RedisURL(t)
	prefix := fmt.Sprintf("cluster-example-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	nodes, err := startCluster([]string{"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"}, url, prefix,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopCluster(ctx, nodes)
	})
	get := func(n *node, path string, v any) int {
		t.Helper()
		resp, err := http.Get("http://" + n.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}

	var nv struct {
		Node  string `json:"node"`
		Nodes []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
	if status := get(nodes[1], "/nodes", &nv); status != http.StatusOK {
		t.Fatalf("GET /nodes on node2: %d", status)
	}
	var ids []string
	for _, n := range nv.Nodes {
		ids = append(ids, n.ID)
	}
	if len(ids) > 0 {
		slices.Sort(ids[1:])
	}
	if nv.Node != "node2" || strings.Join(ids, ",") != "node2,node1,node3" {
		t.Fatalf("GET /nodes on node2: node %q, nodes %v; want node2 first, then node1 and node3", nv.Node, ids)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+nodes[0].Addr()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	sub := `{"type":"SUBSCRIBE","id":"1","payload":{"subscriptions":["news"]}}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || !strings.Contains(string(b), "SUBSCRIBE_SUCCESS") {
		t.Fatalf("SUBSCRIBE answered with %s (%v)", b, err)
	}

	// Node 1 writes its subscriber to Redis without waiting: node 3 sees it a moment later.
	type presence struct {
		Clients []struct {
			Node string `json:"node"`
		} `json:"clients"`
	}
	for {
		var pv presence
		if status := get(nodes[2], "/presence?topic=news", &pv); status != http.StatusOK {
			t.Fatalf("GET /presence on node3: %d", status)
		}
		if len(pv.Clients) == 1 && pv.Clients[0].Node == "node1" {
			break
		}
		if len(pv.Clients) > 1 || ctx.Err() != nil {
			t.Fatalf("presence of news on node3: %+v, want one client on node1", pv.Clients)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, q := range []string{"", "?topic=", "?topic=no+spaces"} {
		if status := get(nodes[2], "/presence"+q, nil); status != http.StatusBadRequest {
			t.Errorf("GET /presence%s: %d, want 400", q, status)
		}
	}
}
