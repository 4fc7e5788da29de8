package switchboard

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// prClientID asks the server for a client's ID with CONNECT.
func prClientID(t *testing.T, c *client) string {
	t.Helper()
	ack := c.request(TypeConnect, nil, "who")
	id, _ := ack.field("client_id").(string)
	if id == "" {
		t.Fatalf("CONNECT_ACK without client_id: %s", ack.raw)
	}
	return id
}

func TestPresenceRequest(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	a, b, other := ts.dial(), ts.dial(), ts.dial()
	a.authenticate(token(t, "1", time.Hour))
	b.authenticate(token(t, "2", time.Hour))
	idA, idB := prClientID(t, a), prClientID(t, b)
	a.subscribe("room")
	b.subscribe("room")
	other.subscribe("elsewhere")

	r := a.request(TypePresence, map[string]any{"topic": "room"}, "pr-1")
	if r.Type != TypePresenceResult {
		t.Fatalf("PRESENCE: got %s", r.raw)
	}
	var res struct {
		Topic   string         `json:"topic"`
		Clients []PresenceInfo `json:"clients"`
	}
	if err := json.Unmarshal(r.Payload, &res); err != nil {
		t.Fatal(err)
	}
	sort.Slice(res.Clients, func(i, j int) bool { return res.Clients[i].UserID < res.Clients[j].UserID })
	node := ts.m.NodeID()
	want := []PresenceInfo{{ClientID: idA, UserID: "1", Node: node}, {ClientID: idB, UserID: "2", Node: node}}
	if res.Topic != "room" || len(res.Clients) != 2 || res.Clients[0] != want[0] || res.Clients[1] != want[1] {
		t.Fatalf("PRESENCE_RESULT = %+v, want topic room and %+v", res, want)
	}

	got, err := ts.m.Presence(context.Background(), "room")
	if err != nil || len(got) != 2 {
		t.Fatalf("Manager.Presence = %v, %v", got, err)
	}
	if got, _ := ts.m.Presence(context.Background(), "nobody-here"); len(got) != 0 {
		t.Fatalf("presence of an empty topic = %v", got)
	}
	if _, err := ts.m.Presence(context.Background(), "bad topic"); err == nil {
		t.Fatal("Manager.Presence accepted an invalid topic")
	}

	// Bad requests and another user's private topic.
	for _, tc := range []struct {
		payload any
		code    string
	}{
		{nil, string(CodeBadMessage)},
		{map[string]any{"topic": 5}, string(CodeBadMessage)},
		{map[string]any{"topic": "no spaces allowed"}, string(CodeBadMessage)},
		{map[string]any{"topic": "user:2:updates"}, string(CodeForbidden)},
	} {
		r := a.request(TypePresence, tc.payload, "bad")
		if r.Type != TypeError || r.field("code") != tc.code {
			t.Errorf("PRESENCE %v: got %s, want ERROR %s", tc.payload, r.raw, tc.code)
		}
	}
}

func TestPresenceEvents(t *testing.T) {
	ts := startServer(t, Config{PresenceEvents: func(topic string) bool { return strings.HasPrefix(topic, "room:") }})
	a, b := ts.dial(), ts.dial()
	a.subscribe("room:1", "quiet")
	if j := a.expect(TypeJoin); j.Topic != "room:1" { // its own, after SUBSCRIBE_SUCCESS
		t.Fatalf("own JOIN: %s", j.raw)
	}
	idB := prClientID(t, b)

	b.subscribe("room:1")
	b.expect(TypeJoin) // its own, after SUBSCRIBE_SUCCESS
	j := a.expect(TypeJoin)
	if j.Topic != "room:1" || j.field("client_id") != idB || j.field("topic") != "room:1" {
		t.Fatalf("JOIN: %s", j.raw)
	}
	// A topic PresenceEvents does not select: no JOIN; the PONG comes next.
	b.subscribe("quiet")
	if r := a.request(TypePing, nil, "p1"); r.Type != TypePong {
		t.Fatalf("expected no JOIN for an unselected topic, got %s", r.raw)
	}

	b.request(TypeUnsubscribe, map[string]any{"subscriptions": []string{"room:1"}}, "u1")
	if l := a.expect(TypeLeave); l.field("client_id") != idB {
		t.Fatalf("LEAVE after UNSUBSCRIBE: %s", l.raw)
	}
	b.subscribe("room:1")
	a.expect(TypeJoin)
	_ = b.ws.CloseNow() // a dropped connection leaves too
	if l := a.expect(TypeLeave); l.field("client_id") != idB {
		t.Fatalf("LEAVE after disconnect: %s", l.raw)
	}
}
