package nats

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/switchboardrt/switchboard"
)

// Presence answers are split into parts that each stay under the limit, and together
// carry every entry once, in order.
func TestPresenceParts(t *testing.T) {
	for _, n := range []int{0, 1, 10, 5000} {
		list := make([]switchboard.PresenceInfo, n)
		for i := range list {
			list[i] = switchboard.PresenceInfo{ClientID: fmt.Sprintf("client-%d", i), UserID: "u", Node: "n1"}
		}
		const limit = 4096
		parts := presenceParts("n1", list, limit)
		var got []switchboard.PresenceInfo
		for i, data := range parts {
			var p presencePart
			if err := json.Unmarshal(data, &p); err != nil {
				t.Fatal(err)
			}
			if p.Node != "n1" || p.Part != i || p.Parts != len(parts) || p.Clients == nil {
				t.Fatalf("n=%d: part %d is %s", n, i, data)
			}
			if len(data) > limit+100 {
				t.Fatalf("n=%d: part %d has %d bytes, limit %d", n, i, len(data), limit)
			}
			got = append(got, p.Clients...)
		}
		if len(got) != n {
			t.Fatalf("n=%d: %d entries in %d parts", n, len(got), len(parts))
		}
		for i := range got {
			if got[i] != list[i] {
				t.Fatalf("n=%d: entry %d is %+v, want %+v", n, i, got[i], list[i])
			}
		}
	}
	// An entry larger than the limit still travels, alone.
	big := []switchboard.PresenceInfo{{ClientID: "a"}, {ClientID: string(make([]byte, 100))}, {ClientID: "b"}}
	if parts := presenceParts("n", big, 50); len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
}
