package jsonrpc_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
)

// Every entry of a batch after the first is charged to the message rate limit like a
// message of its own: with a burst of 3 and almost no refill, a batch of 5 requests gets 3
// answers and 2 rate-limited errors, each matched to its id.
func TestBatchEntriesChargedToRateLimit(t *testing.T) {
	e := newEnv(t, switchboard.Config{MessageRate: 0.001, MessageBurst: 3, RateLimitStrikes: -1})
	c := e.dial("/rpc", nil)
	var reqs []string
	for i := 1; i <= 5; i++ {
		reqs = append(reqs, `{"jsonrpc":"2.0","method":"double","params":[`+string(rune('0'+i))+`],"id":`+string(rune('0'+i))+`}`)
	}
	c.send("[" + strings.Join(reqs, ",") + "]")
	// The rate-limited entries also produce an "error" notification each (the manager's
	// ERROR rate_limited in this codec); skip those and read the batch response.
	var batch []json.RawMessage
	for batch == nil {
		b := c.read()
		if len(b) > 0 && b[0] == '[' {
			if err := json.Unmarshal(b, &batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	ok, limited := 0, 0
	for _, raw := range batch {
		var r struct {
			ID     int `json:"id"`
			Result *int
			Error  *struct{ Code int }
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Result != nil && *r.Result == 2*r.ID:
			ok++
		case r.Error != nil && r.Error.Code == jsonrpc.CodeRateLimited:
			limited++
		default:
			t.Errorf("unexpected entry %s", raw)
		}
	}
	if ok != 3 || limited != 2 {
		t.Fatalf("batch of 5 with a burst of 3: %d answered, %d rate limited; want 3 and 2 (%s)", ok, limited, batch)
	}
}
