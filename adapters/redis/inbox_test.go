package redis

import (
	"context"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/inboxtest"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// TestInboxContract runs the InboxStore contract against the Redis store and, side by side,
// the in-memory one, so that the two behave alike.
func TestInboxContract(t *testing.T) {
	inboxtest.Run(t,
		inboxtest.Store{Name: "memory", New: func(*testing.T) switchboard.InboxStore { return switchboard.NewMemoryInbox() }},
		inboxtest.Store{Name: "redis", New: func(t *testing.T) switchboard.InboxStore {
			return NewInbox(rawClient(t, testenv.RedisURL(t)), uniquePrefix(t))
		}},
	)
}

// TestInboxKeyExpires checks the Redis side of the bound and the TTL: the list is trimmed
// to the size, the key expires with its newest entry, and Take deletes it.
func TestInboxKeyExpires(t *testing.T) {
	url := testenv.RedisURL(t)
	rc := rawClient(t, url)
	s := NewInbox(rc, uniquePrefix(t))
	ctx := context.Background()
	for i := range 5 {
		if err := s.Put(ctx, "alice", inboxtest.Msg(t, string(rune('a'+i)), i), 3, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	key := s.Key("alice")
	if n := rc.LLen(ctx, key).Val(); n != 3 {
		t.Fatalf("list of %d entries, want 3", n)
	}
	if ttl := rc.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("key TTL %v, want within (0, 1h]", ttl)
	}
	if _, err := s.Take(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if n := rc.Exists(ctx, key).Val(); n != 0 {
		t.Fatal("Take left the key behind")
	}
	if err := s.Put(ctx, "bob", inboxtest.Msg(t, "x", 1), 3, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the key of an expired inbox to disappear", func() bool {
		return rc.Exists(ctx, s.Key("bob")).Val() == 0
	})
}
