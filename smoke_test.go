package switchboard

import (
	"context"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	ts := startServer(t, Config{Authenticator: newJWT(t)})
	c := ts.dial()
	ack := c.request(TypeConnect, nil, "c1")
	if ack.Type != TypeConnectAck || ack.field("client_id") == "" {
		t.Fatalf("ack %s", ack.raw)
	}
	if r := c.authenticate(token(t, "42", time.Hour)); r.Type != TypeAuthenticateSuccess || r.field("user_id") != "42" {
		t.Fatalf("auth %s", r.raw)
	}
	if r := c.subscribe("news"); r.Type != TypeSubscribeSuccess {
		t.Fatalf("sub %s", r.raw)
	}
	msg, _ := NewData("article", map[string]any{"id": 1})
	if err := ts.m.Publish(context.Background(), "news", msg); err != nil {
		t.Fatal(err)
	}
	w := c.expect(TypeData)
	if w.Topic != "news" {
		t.Fatalf("%s", w.raw)
	}
	t.Logf("%s", w.raw)
}
