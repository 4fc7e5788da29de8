package switchboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

// This example embeds a Manager in an application's HTTP server: clients connect to /ws
// with a JWT, and the application's own handlers push messages to them.
func ExampleNew() {
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: []byte(os.Getenv("JWT_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{
		Authenticator:  jwt,
		RequireAuth:    true,
		OriginPatterns: []string{"app.example.com"},
	})

	mux := http.NewServeMux()
	mux.Handle("GET /ws", m)
	mux.HandleFunc("POST /orders/{id}/ship", func(w http.ResponseWriter, r *http.Request) {
		// … mark the order shipped in the database, then tell its owner's open tabs.
		userID := r.Header.Get("X-User-ID") // whatever the application's session says
		msg, err := switchboard.NewNotification(switchboard.Notification{
			Title:   "Order shipped",
			Message: "#" + r.PathValue("id") + " is on its way",
			Level:   switchboard.LevelSuccess,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := m.BroadcastToUsers(r.Context(), msg, userID); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	srv := &http.Server{Addr: ":8080", Handler: mux}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	// On SIGTERM: stop taking requests, then say goodbye to every client (close 1001, so
	// they reconnect to another instance).
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = m.Shutdown(ctx)
}

// exampleClient is a minimal client of wire protocol v1 for the examples.
type exampleClient struct{ ws *websocket.Conn }

func exampleDial(url string) *exampleClient {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	return &exampleClient{ws: ws}
}

func (c *exampleClient) send(frame string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		log.Fatal(err)
	}
}

// exampleFrame holds the fields of a server frame that do not change from run to run.
type exampleFrame struct {
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	CorrelationID string          `json:"correlation_id"`
	Topic         string          `json:"topic"`
}

func (c *exampleClient) read() exampleFrame {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var f exampleFrame
	if err := json.Unmarshal(b, &f); err != nil {
		log.Fatal(err)
	}
	return f
}

// exampleServe serves m on a local test server and returns its ws:// URL and a function
// that shuts both down.
func exampleServe(m *switchboard.Manager) (string, func()) {
	srv := httptest.NewServer(m)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
		srv.Close()
	}
}

// A client subscribes to a topic; the application publishes to it.
func ExampleManager_Publish() {
	m := switchboard.New(switchboard.Config{})
	url, stop := exampleServe(m)
	defer stop()

	c := exampleDial(url)
	defer c.ws.CloseNow()
	c.send(`{"type": "SUBSCRIBE", "id": "1", "payload": {"subscriptions": ["prices:EURUSD"]}}`)
	ack := c.read()
	fmt.Println(ack.Type, ack.CorrelationID, string(ack.Payload))

	quote, err := switchboard.NewData("quote", map[string]any{"bid": 1.0842, "ask": 1.0844})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Publish(context.Background(), "prices:EURUSD", quote); err != nil {
		log.Fatal(err)
	}
	f := c.read()
	fmt.Println(f.Type, f.Topic, string(f.Payload))

	// Output:
	// SUBSCRIBE_SUCCESS 1 {"subscriptions":["prices:EURUSD"]}
	// DATA prices:EURUSD {"resource":"quote","data":{"ask":1.0844,"bid":1.0842}}
}

// A user with two tabs open gets a notification in both; other users get nothing.
func ExampleManager_BroadcastToUsers() {
	secret := []byte("example secret, 32 bytes or more")
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		log.Fatal(err)
	}
	m := switchboard.New(switchboard.Config{Authenticator: jwt})
	url, stop := exampleServe(m)
	defer stop()

	// Each client authenticates at the handshake with a token in the URL; CONNECT_ACK
	// confirms who it is.
	connect := func(user string) *exampleClient {
		tok, err := auth.NewHMACToken(secret, user, time.Hour, nil)
		if err != nil {
			log.Fatal(err)
		}
		c := exampleDial(url + "?token=" + tok)
		c.send(`{"type": "CONNECT", "id": "hello"}`)
		var ack struct {
			UserID string `json:"user_id"`
		}
		_ = json.Unmarshal(c.read().Payload, &ack)
		fmt.Println("connected:", ack.UserID)
		return c
	}
	tab1, tab2, bob := connect("alice"), connect("alice"), connect("bob")
	for _, c := range []*exampleClient{tab1, tab2, bob} {
		defer c.ws.CloseNow()
	}

	msg, err := switchboard.NewNotification(switchboard.Notification{
		Title:   "Order shipped",
		Message: "#1042 is on its way",
		Level:   switchboard.LevelSuccess,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.BroadcastToUsers(context.Background(), msg, "alice"); err != nil {
		log.Fatal(err)
	}
	for _, c := range []*exampleClient{tab1, tab2} {
		f := c.read()
		fmt.Println("alice:", f.Type, string(f.Payload))
	}
	// bob's next frame is the answer to his PING: nothing was sent to him before it.
	bob.send(`{"type": "PING", "id": "p1"}`)
	f := bob.read()
	fmt.Println("bob:", f.Type, f.CorrelationID)

	// Output:
	// connected: alice
	// connected: alice
	// connected: bob
	// alice: NOTIFICATION {"title":"Order shipped","message":"#1042 is on its way","level":"success"}
	// alice: NOTIFICATION {"title":"Order shipped","message":"#1042 is on its way","level":"success"}
	// bob: PONG p1
}

// An application registers a handler for ACTION messages; its reply goes back to the client
// with the request's id as correlation_id.
func ExampleManager_Handle() {
	m := switchboard.New(switchboard.Config{})
	m.Handle(switchboard.TypeAction, func(ctx context.Context, c *switchboard.Conn, msg *switchboard.Message) error {
		var req struct {
			Action string `json:"action"`
			N      int    `json:"n"`
		}
		if err := msg.DecodePayload(&req); err != nil {
			return switchboard.Errorf(switchboard.CodeBadMessage, "ACTION payload: %v", err)
		}
		switch req.Action {
		case "double":
			return c.Reply(msg, switchboard.TypeActionResult, map[string]any{"action": req.Action, "result": 2 * req.N})
		default:
			return switchboard.Errorf(switchboard.CodeBadMessage, "unknown action %q", req.Action)
		}
	})
	url, stop := exampleServe(m)
	defer stop()

	c := exampleDial(url)
	defer c.ws.CloseNow()
	c.send(`{"type": "ACTION", "id": "a1", "payload": {"action": "double", "n": 21}}`)
	f := c.read()
	fmt.Println(f.Type, f.CorrelationID, string(f.Payload))

	c.send(`{"type": "ACTION", "id": "a2", "payload": {"action": "explode"}}`)
	f = c.read()
	fmt.Println(f.Type, f.CorrelationID, string(f.Payload))

	// Output:
	// ACTION_RESULT a1 {"action":"double","result":42}
	// ERROR a2 {"code":"bad_message","message":"unknown action \"explode\""}
}
