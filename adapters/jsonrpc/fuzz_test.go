package jsonrpc_test

import (
	"errors"
	"testing"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/adapters/jsonrpc"
)

// FuzzDecode feeds arbitrary frames to the codec's decoder: it never panics, and every
// error it returns wraps switchboard.ErrBadMessage.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"getblockcount","id":1}`,
		`{"jsonrpc":"2.0","method":"subscribe","params":["newBlocks"],"id":"a"}`,
		`[{"jsonrpc":"2.0","method":"x","id":1},{"jsonrpc":"2.0","method":"y"}]`,
		`{"jsonrpc":"1.0","method":5}`, `{`, `null`, `[]`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m switchboard.Message
		if err := (jsonrpc.Codec{}).Decode(frame, &m); err != nil && !errors.Is(err, switchboard.ErrBadMessage) {
			t.Fatalf("Decode(%q) = %v, not an ErrBadMessage", frame, err)
		}
	})
}
