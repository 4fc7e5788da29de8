package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// Two separate server processes (the switchboard binary) on different ports, one Redis:
// a client connected to node A receives what is published through node B's HTTP API, and a
// notification for a user reaches that user's connections on both nodes.
func TestClusterOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	url := testenv.RedisURL(t)
	bin := filepath.Join(t.TempDir(), "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prefix := fmt.Sprintf("sbtest-%d", time.Now().UnixNano())
	start := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(bin, "--addr", addr, "--dev=false", "--jwt-secret", testSecret,
			"--api-key", testAPIKey, "--broker", url, "--broker-prefix", prefix, "--log-level", "warn")
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { // keep the pipe drained; show the server's complaints in the test log
			s := bufio.NewScanner(stderr)
			for s.Scan() {
				t.Log(addr, s.Text())
			}
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		deadline := time.Now().Add(waitLimit)
		for {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return "http://" + addr
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s never became healthy (%v)", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	nodeA, nodeB := start(), start()
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
