package jsonrpc_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboardrt/switchboard"
)

// keepFor keeps n NOTIFICATIONs {"n": i} for alice, who is offline.
func keepFor(t *testing.T, e *env, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		msg, err := switchboard.NewMessage(switchboard.TypeNotification, map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.m.SendToUser(context.Background(), "alice", msg, switchboard.KeepIfOffline); err != nil {
			t.Fatal(err)
		}
	}
}

// expectKept reads the kept notifications n = 1..count, in order.
func expectKept(t *testing.T, c *client, count int) {
	t.Helper()
	for i := 1; i <= count; i++ {
		r := c.readResponse()
		var p struct {
			N int `json:"n"`
		}
		_ = json.Unmarshal(r.Params, &p)
		if r.Method != "notification" || p.N != i {
			t.Fatalf("kept message %d: got %+v (params %s)", i, r, r.Params)
		}
	}
}

// TestAuthenticateResultBeforeKept: the messages kept for an offline user follow the result
// of the authenticate call, so that a client can set up its handlers when the call returns.
func TestAuthenticateResultBeforeKept(t *testing.T) {
	e, tok := authEnv(t, false)
	keepFor(t, e, 3)
	c := e.dial("/rpc", nil)
	r := c.call(`{"jsonrpc":"2.0","method":"authenticate","params":["` + tok + `"],"id":7}`)
	if string(r.ID) != "7" || r.Error != nil || !strings.Contains(string(r.Result), `"user_id":"alice"`) {
		t.Fatalf("first frame after authenticate: %+v; want its result", r)
	}
	expectKept(t, c, 3)
	if r := c.call(`{"jsonrpc":"2.0","method":"whoami","id":8}`); string(r.Result) != `"alice"` {
		t.Fatalf("whoami: %+v", r)
	}
}

// TestAuthenticateInBatchKeptFirst: in a batch the result travels with the batch's other
// responses, in one array sent at the end, so the kept messages come before it.
func TestAuthenticateInBatchKeptFirst(t *testing.T) {
	e, tok := authEnv(t, false)
	keepFor(t, e, 2)
	c := e.dial("/rpc", nil)
	c.send(`[{"jsonrpc":"2.0","method":"authenticate","params":["` + tok + `"],"id":1},{"jsonrpc":"2.0","method":"whoami","id":2}]`)
	expectKept(t, c, 2)
	var batch []response
	if b := c.read(); json.Unmarshal(b, &batch) != nil || len(batch) != 2 {
		t.Fatalf("batch response %s", b)
	}
	for _, r := range batch {
		if r.Error != nil {
			t.Fatalf("batch entry %+v", r)
		}
	}
}

// TestAuthenticateNotificationKept: an authenticate sent as a notification (no id) gets no
// response; the kept messages still arrive.
func TestAuthenticateNotificationKept(t *testing.T) {
	e, tok := authEnv(t, false)
	keepFor(t, e, 1)
	c := e.dial("/rpc", nil)
	c.send(`{"jsonrpc":"2.0","method":"authenticate","params":["` + tok + `"]}`)
	expectKept(t, c, 1)
}
