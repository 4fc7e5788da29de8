package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

// feedTopic is the public topic every client may follow: one redacted event per new order.
const feedTopic = "orders:feed"

// demoTokenTTL is the lifetime of the tokens GET /token hands out.
const demoTokenTTL = time.Hour

// maxItemLen bounds the item name of an order, in bytes.
const maxItemLen = 200

// ordersTopic is the private topic of a user's orders. The library's default topic
// authorizer (auth.UserTopics) reserves every "user:<id>:…" topic to user <id>, so no
// extra code is needed to keep user 7 out of user 42's orders.
func ordersTopic(userID string) string { return "user:" + userID + ":orders" }

// Order statuses.
const (
	statusPlaced    = "placed"
	statusCancelled = "cancelled"
)

// order is what the in-memory store keeps and what DATA messages carry.
type order struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Item      string    `json:"item"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// store is the application's own state: an in-memory order table. A real backend would
// use its database here; switchboard only carries the news of changes.
type store struct {
	mu     sync.Mutex
	next   int
	orders []*order // in creation order
}

func (s *store) create(userID, item string) order {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o := &order{
		ID:        "ord-" + strconv.Itoa(s.next),
		UserID:    userID,
		Item:      item,
		Status:    statusPlaced,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	s.orders = append(s.orders, o)
	return *o
}

func (s *store) list(userID string) []order {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []order{} // encodes as [] rather than null when empty
	for _, o := range s.orders {
		if o.UserID == userID {
			out = append(out, *o)
		}
	}
	return out
}

// errNotYours covers both "no such order" and "someone else's order", so that a client
// cannot probe which order IDs exist.
var errNotYours = errors.New("not one of your orders")

// cancel marks the order cancelled if it belongs to userID. Cancelling an order that is
// already cancelled succeeds and changes nothing.
func (s *store) cancel(userID, orderID string) (o order, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.orders, func(o *order) bool { return o.ID == orderID })
	if i < 0 || s.orders[i].UserID != userID {
		return order{}, false, errNotYours
	}
	p := s.orders[i]
	changed = p.Status != statusCancelled
	p.Status = statusCancelled
	return *p, changed, nil
}

// app is the product backend: its own REST API next to a switchboard Manager.
type app struct {
	secret  []byte
	log     *slog.Logger
	store   store
	manager *switchboard.Manager
}

// newApp builds the application around a Manager that authenticates clients with HS256
// JWTs signed with secret and refuses everything but AUTHENTICATE (and PING) until they
// have. It panics when secret is empty.
func newApp(secret []byte) *app {
	logger := slog.Default()
	jwt, err := auth.NewJWT(auth.JWTConfig{HMACSecret: secret, Leeway: 5 * time.Second})
	if err != nil {
		panic(fmt.Sprintf("notifications: %v", err))
	}
	a := &app{secret: secret, log: logger}
	a.manager = switchboard.New(switchboard.Config{
		Authenticator: jwt,
		RequireAuth:   true,
		Logger:        logger,
		// TopicAuthorizer is left at its default, auth.UserTopics: "user:42:…" topics
		// belong to user 42 only, every other topic (orders:feed) is open.
	})
	a.manager.Handle(switchboard.TypeAction, a.handleAction)
	return a
}

// Handler returns the HTTP routes of the application, the WebSocket endpoint included.
func (a *app) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", a.manager)
	mux.HandleFunc("POST /orders", a.createOrder)
	mux.HandleFunc("GET /orders", a.listOrders)
	mux.HandleFunc("GET /token", a.demoToken)
	mux.HandleFunc("GET /{$}", a.index)
	return mux
}

// Shutdown closes every WebSocket connection (close code 1001, so clients reconnect later)
// and stops the manager.
func (a *app) Shutdown(ctx context.Context) error { return a.manager.Shutdown(ctx) }

func (a *app) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, `switchboard notifications example

GET  /token?user=42                  demo token (DEMO ONLY: anyone gets a token for any user)
POST /orders {"user_id","item"}      create an order and notify its user
GET  /orders?user_id=42              list a user's orders
GET  /ws                             WebSocket endpoint (wire protocol v1)

Open the browser console on this page to try the WebSocket; see README.md.
`)
}

// createRequest is the body of POST /orders.
type createRequest struct {
	UserID flexibleID `json:"user_id"`
	Item   string     `json:"item"`
}

// flexibleID accepts a user ID sent as a JSON string ("42") or integer (42).
type flexibleID string

func (f *flexibleID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexibleID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("user_id must be a string or a number")
	}
	if _, err := strconv.ParseUint(n.String(), 10, 64); err != nil {
		return errors.New("user_id must be a string or a non-negative integer")
	}
	*f = flexibleID(n.String())
	return nil
}

// checkUserID reports whether id, read from the parameter param, can be used in a topic
// name. IDs with ':' are refused because auth.UserTopics would let user "a" read the
// topics of user "a:b".
func (a *app) checkUserID(param, id string) error {
	if id == "" {
		return fmt.Errorf("%s is required", param)
	}
	if strings.Contains(id, ":") || !switchboard.ValidTopic(ordersTopic(id), a.manager.Config().MaxTopicLength) {
		return fmt.Errorf("%s may hold only letters, digits and . _ - @ / = + , #", param)
	}
	return nil
}

func (a *app) createOrder(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "body must hold one JSON object")
		return
	}
	userID := string(req.UserID)
	if err := a.checkUserID("user_id", userID); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	item := strings.TrimSpace(req.Item)
	if item == "" || len(item) > maxItemLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("item is required (1-%d bytes)", maxItemLen))
		return
	}

	o := a.store.create(userID, item)
	// The order exists now, whatever happens to the notifications: a failed publish is
	// logged, not reported to the caller as a failed order. The notifications go out even
	// if the HTTP client hangs up meanwhile, hence a context that outlives the request
	// (with the in-memory broker publishing never blocks; with Redis or NATS it may).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	a.announce(ctx, o)

	w.Header().Set("Location", "/orders?user_id="+userID)
	writeJSON(w, http.StatusCreated, o)
}

// announce tells the world about a new order, three ways:
//   - a NOTIFICATION to every connection of the user (each open tab), no subscription needed;
//   - a DATA message with the whole order on the user's private topic;
//   - an EVENT on the public feed, with only the item: no user ID, no order ID.
func (a *app) announce(ctx context.Context, o order) {
	note, err := switchboard.NewNotification(switchboard.Notification{
		Title:   "Order received",
		Message: fmt.Sprintf("We received your order %s for %q.", o.ID, o.Item),
		Level:   switchboard.LevelSuccess,
	})
	if err == nil {
		err = a.manager.BroadcastToUsers(ctx, note, o.UserID)
	}
	a.logPublish("notification", o, err)

	a.publishOrder(ctx, o)

	event, err := switchboard.NewEvent("order_created", map[string]string{"item": o.Item})
	if err == nil {
		err = a.manager.Publish(ctx, feedTopic, event)
	}
	a.logPublish(feedTopic, o, err)
}

// publishOrder sends the current state of o to its owner's orders topic.
func (a *app) publishOrder(ctx context.Context, o order) {
	data, err := switchboard.NewData("order", o)
	if err == nil {
		err = a.manager.Publish(ctx, ordersTopic(o.UserID), data)
	}
	a.logPublish(ordersTopic(o.UserID), o, err)
}

func (a *app) logPublish(what string, o order, err error) {
	if err != nil {
		a.log.Warn("notifications: publish failed", "to", what, "order", o.ID, "err", err)
	}
}

func (a *app) listOrders(w http.ResponseWriter, r *http.Request) {
	userID := r.URL.Query().Get("user_id")
	if err := a.checkUserID("user_id", userID); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.store.list(userID))
}

// demoToken issues a token for any user who asks. DEMO ONLY: a real backend issues tokens
// after its own login, to the logged-in user, never to whoever names a user ID.
func (a *app) demoToken(w http.ResponseWriter, r *http.Request) {
	userID := r.URL.Query().Get("user")
	if err := a.checkUserID("user", userID); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tok, err := auth.NewHMACToken(a.secret, userID, demoTokenTTL, nil)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot issue a token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":      tok,
		"user_id":    userID,
		"expires_in": int(demoTokenTTL.Seconds()),
		"warning":    "demo only: this endpoint gives anyone a token for any user",
	})
}

// actionRequest is the payload of an ACTION message.
type actionRequest struct {
	Action  string `json:"action"`
	OrderID string `json:"order_id"`
}

// handleAction answers ACTION {"action": "cancel", "order_id": "ord-1"} with ACTION_RESULT.
// It runs on the connection's read goroutine; with RequireAuth the connection is
// authenticated by the time it gets here.
func (a *app) handleAction(ctx context.Context, c *switchboard.Conn, msg *switchboard.Message) error {
	var req actionRequest
	if err := msg.DecodePayload(&req); err != nil {
		return switchboard.Errorf(switchboard.CodeBadMessage, `ACTION payload must be {"action": "cancel", "order_id": "…"}`)
	}
	user := c.UserID()
	if user == "" {
		return switchboard.Errorf(switchboard.CodeUnauthorized, "authenticate first")
	}
	switch req.Action {
	case "cancel":
		if req.OrderID == "" {
			return switchboard.Errorf(switchboard.CodeBadMessage, "order_id is required")
		}
		o, changed, err := a.store.cancel(user, req.OrderID)
		if err != nil {
			return switchboard.Errorf(switchboard.CodeForbidden, "cannot cancel order %q: %v", req.OrderID, err)
		}
		if changed {
			// Every tab of the user that follows its orders topic sees the new status.
			a.publishOrder(ctx, o)
		}
		return c.Reply(msg, switchboard.TypeActionResult, map[string]any{
			"action": req.Action,
			"ok":     true,
			"order":  o,
		})
	default:
		return switchboard.Errorf(switchboard.CodeBadMessage, "unknown action %q (known: cancel)", req.Action)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}
