package switchboard

import (
	"context"
	"time"
)

// InboxStore keeps messages for users who have no live connection, until they next
// authenticate. Implementations must be safe for concurrent use.
type InboxStore interface {
	// Put appends msg to user's inbox, keeping at most size messages (the oldest are dropped)
	// and each for ttl.
	Put(ctx context.Context, user string, msg *Message, size int, ttl time.Duration) error
	// Take removes and returns the messages of user's inbox that have not expired, oldest
	// first.
	Take(ctx context.Context, user string) ([]*Message, error)
	// Remove removes the message whose ID is id from user's inbox and reports whether it
	// was there.
	Remove(ctx context.Context, user, id string) (bool, error)
}
