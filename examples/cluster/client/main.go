// Command client checks the cluster example end to end: it subscribes to a topic over
// WebSocket on one node, publishes to it through another node's POST /publish, and prints
// the DATA message it receives. It exits 0 when the message arrives, 1 otherwise (nothing
// within --timeout, or an error).
//
// Usage:
//
//	go run ./examples/cluster/client [--subscribe-on 127.0.0.1:8101] [--publish-on 127.0.0.1:8103]
//	                                 [--topic news] [--timeout 5s]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/coder/websocket"
)

// frame holds the fields of a server frame the client looks at.
type frame struct {
	Type    string          `json:"type"`
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
}

func main() {
	subOn := flag.String("subscribe-on", "127.0.0.1:8101", "`addr` of the node to subscribe on")
	pubOn := flag.String("publish-on", "127.0.0.1:8103", "`addr` of the node to publish through")
	topic := flag.String("topic", "news", "topic to subscribe and publish to")
	timeout := flag.Duration("timeout", 5*time.Second, "how long to wait for the message")
	flag.Parse()
	if err := run(*subOn, *pubOn, *topic, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(subOn, pubOn, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	wsURL := "ws://" + subOn + "/ws"
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	defer ws.CloseNow()

	sub, _ := json.Marshal(map[string]any{
		"type": "SUBSCRIBE", "id": "1",
		"payload": map[string]any{"subscriptions": []string{topic}},
	})
	if err := ws.Write(ctx, websocket.MessageText, sub); err != nil {
		return fmt.Errorf("send SUBSCRIBE: %w", err)
	}
	ack, err := read(ctx, ws)
	if err != nil {
		return fmt.Errorf("waiting for SUBSCRIBE_SUCCESS: %w", err)
	}
	if ack.Type != "SUBSCRIBE_SUCCESS" {
		return fmt.Errorf("SUBSCRIBE answered with %s %s", ack.Type, ack.Payload)
	}
	fmt.Printf("subscribed to %q on %s\n", topic, subOn)

	body := `{"headline":"hello from the other side of the cluster"}`
	pubURL := "http://" + pubOn + "/publish?topic=" + url.QueryEscape(topic)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pubURL, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	var pub struct {
		PublishedBy string `json:"published_by"`
	}
	_ = json.Unmarshal(answer, &pub)
	fmt.Printf("published %s to %q via %s (%s)\n", body, topic, pubOn, pub.PublishedBy)

	for {
		f, err := read(ctx, ws)
		if err != nil {
			return fmt.Errorf("no DATA on %q within %s: %w", topic, timeout, err)
		}
		if f.Type == "DATA" && f.Topic == topic {
			fmt.Printf("received on %s: %s topic=%s payload=%s\n", subOn, f.Type, f.Topic, f.Payload)
			ws.Close(websocket.StatusNormalClosure, "")
			return nil
		}
	}
}

func read(ctx context.Context, ws *websocket.Conn) (frame, error) {
	_, b, err := ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	err = json.Unmarshal(b, &f)
	return f, err
}
