package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// processCluster runs server processes (the switchboard binary) that share one Redis
// under a prefix of their own.
type processCluster struct {
	t      *testing.T
	bin    string
	redis  string
	prefix string
}

func newProcessCluster(t *testing.T) *processCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	url := testenv.RedisURL(t)
	bin := filepath.Join(t.TempDir(), "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return &processCluster{t: t, bin: bin, redis: url, prefix: fmt.Sprintf("sbtest-%d", time.Now().UnixNano())}
}

// start runs one node with the given extra flags and waits until it is healthy. It
// returns the node's base URL and its process.
func (pc *processCluster) start(args ...string) (string, *exec.Cmd) {
	t := pc.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args = append([]string{"--addr", addr, "--dev=false", "--jwt-secret", testSecret,
		"--api-key", testAPIKey, "--broker", pc.redis, "--broker-prefix", pc.prefix, "--log-level", "warn"}, args...)
	cmd := exec.Command(pc.bin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { // keep the pipe drained; show the server's complaints in the test log
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			t.Log(addr, s.Text())
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // fails harmlessly on a killed process
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(waitLimit)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + addr, cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s never became healthy (%v)", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two separate server processes (the switchboard binary) on different ports, one Redis:
// a client connected to node A receives what is published through node B's HTTP API, and a
// notification for a user reaches that user's connections on both nodes.
func TestClusterOfProcesses(t *testing.T) {
	pc := newProcessCluster(t)
	nodeA, _ := pc.start()
	nodeB, _ := pc.start()
	tsA, tsB := &httptest.Server{URL: nodeA}, &httptest.Server{URL: nodeB} // for dial

	onA := dial(t, tsA)
	onA.authenticate("42")
	onA.subscribe("news")
	alsoOnB := dial(t, tsB)
	alsoOnB.authenticate("42")
	alsoOnB.roundTrip()

	if status, body := apiCall(t, "POST", nodeB+"/api/publish",
		`{"topic":"news","type":"DATA","payload":{"resource":"article","data":{"id":1}}}`); status != http.StatusOK {
		t.Fatalf("publish on B: %d %s", status, body)
	}
	if m := onA.next(switchboard.TypeData); m.Topic != "news" {
		t.Fatalf("client on A got %+v", m)
	}

	if status, body := apiCall(t, "POST", nodeA+"/api/users/42/notify", `{"title":"Hi","message":"both tabs"}`); status != http.StatusOK {
		t.Fatalf("notify on A: %d %s", status, body)
	}
	for _, c := range []*wsClient{onA, alsoOnB} {
		if m := c.next(switchboard.TypeNotification); m.payload(t)["title"] != "Hi" {
			t.Fatalf("notification: %s", m.Payload)
		}
	}
	if status, body := apiCall(t, "GET", nodeA+"/healthz", ""); status != http.StatusOK || !strings.Contains(body, `"broker":"ok"`) {
		t.Fatalf("healthz on A: %d %s", status, body)
	}
}

// clusterView is what /api/nodes and /api/presence of one node say.
type clusterView struct {
	Nodes   []switchboard.NodeInfo     `json:"nodes"`
	Clients []switchboard.PresenceInfo `json:"clients"`
}

func getView(t *testing.T, url string) clusterView {
	t.Helper()
	status, body := apiCall(t, "GET", url, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	var v clusterView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return v
}

func viewNodeIDs(v clusterView) string {
	ids := make([]string, len(v.Nodes))
	for i, n := range v.Nodes {
		ids[i] = n.ID
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// Three server processes; one is killed with SIGKILL (no shutdown, no leaving the
// cluster). The others list it in /api/nodes and its client in /api/presence until its
// heartbeat expires, then no more: within the node TTL, with no help from the dead node.
// Its user's connection stops counting against --max-conns-per-user too.
func TestClusterNodeKilled(t *testing.T) {
	pc := newProcessCluster(t)
	nodeA, _ := pc.start("--node-id", "node-a", "--max-conns-per-user", "1")
	pc.start("--node-id", "node-b", "--max-conns-per-user", "1")
	nodeC, procC := pc.start("--node-id", "node-c", "--max-conns-per-user", "1")

	onC := dial(t, &httptest.Server{URL: nodeC})
	onC.authenticate("kim")
	onC.subscribe("room")
	onC.roundTrip()

	waitUntil(t, "A to see the three nodes and C's subscriber", func() bool {
		v := getView(t, nodeA+"/api/presence?topic=room")
		return viewNodeIDs(getView(t, nodeA+"/api/nodes")) == "node-a,node-b,node-c" &&
			len(v.Clients) == 1 && v.Clients[0].Node == "node-c" && v.Clients[0].UserID == "kim"
	})
	if v := getView(t, nodeA+"/api/nodes"); v.Nodes[0].ID != "node-a" {
		t.Fatalf("/api/nodes on A should list A first: %+v", v.Nodes)
	}
	if status := dialAs(t, nodeA, "kim"); status != http.StatusTooManyRequests {
		t.Fatalf("a second connection of kim (cap 1, one on C) got %d, want 429", status)
	}

	if err := procC.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitUntil(t, "C to vanish from A's /api/nodes and /api/presence", func() bool {
		return viewNodeIDs(getView(t, nodeA+"/api/nodes")) == "node-a,node-b" &&
			len(getView(t, nodeA+"/api/presence?topic=room").Clients) == 0
	})
	t.Logf("the killed node vanished %v after SIGKILL", time.Since(killed).Round(100*time.Millisecond))
	if status := dialAs(t, nodeA, "kim"); status != http.StatusSwitchingProtocols {
		t.Fatalf("kim's connection on the dead node still counts: a new one on A got %d", status)
	}
}

// dialAs opens a WebSocket connection to base's /ws with a token for user at the
// handshake, and returns the HTTP status of the answer (101 when upgraded).
func dialAs(t *testing.T, base, user string) int {
	t.Helper()
	tok, err := auth.NewHMACToken([]byte(testSecret), user, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+tok, nil)
	if err == nil {
		t.Cleanup(func() { _ = ws.CloseNow() })
	}
	if resp == nil {
		t.Fatalf("dial %s as %s: %v", base, user, err)
	}
	return resp.StatusCode
}

// waitUntil polls cond for up to 30 s (three times the default node TTL, with room for a
// loaded machine).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiCall sends a request with the test API key to a server process.
func apiCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
