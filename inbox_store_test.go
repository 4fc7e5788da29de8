package switchboard_test

import (
	"testing"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/inboxtest"
)

// TestMemoryInboxContract runs the InboxStore contract against the in-memory store; the
// Redis store runs the same suite in adapters/redis.
func TestMemoryInboxContract(t *testing.T) {
	inboxtest.Run(t, inboxtest.Store{Name: "memory", New: func(*testing.T) switchboard.InboxStore {
		return switchboard.NewMemoryInbox()
	}})
}
