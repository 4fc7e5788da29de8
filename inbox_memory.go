package switchboard

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// MemoryInbox is the in-memory InboxStore, for a single node: the default of
// Config.Inbox.Store unless the Broker keeps inboxes itself.
//
// Its memory stays bounded by what is kept: each user's inbox holds at most size messages,
// and every operation first drops the messages whose time is up, along with the inboxes
// they leave empty. It starts no goroutine.
type MemoryInbox struct {
	mu    sync.Mutex
	users map[string][]*inboxEntry // oldest first
	byExp expiryHeap               // every kept entry, soonest expiry first
}

// inboxEntry is one kept message.
type inboxEntry struct {
	user    string
	msg     *Message
	expires time.Time
	index   int // in byExp
}

// NewMemoryInbox returns an empty in-memory inbox store.
func NewMemoryInbox() *MemoryInbox {
	return &MemoryInbox{users: make(map[string][]*inboxEntry)}
}

var errInboxArgs = errors.New("switchboard: inbox size and ttl must be positive")

// Put implements InboxStore.
func (s *MemoryInbox) Put(_ context.Context, user string, msg *Message, size int, ttl time.Duration) error {
	if size <= 0 || ttl <= 0 {
		return errInboxArgs
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	e := &inboxEntry{user: user, msg: msg, expires: now.Add(ttl)}
	heap.Push(&s.byExp, e)
	list := append(s.users[user], e)
	if over := len(list) - size; over > 0 {
		for _, old := range list[:over] {
			heap.Remove(&s.byExp, old.index)
		}
		list = slices.Delete(list, 0, over)
	}
	s.users[user] = list
	return nil
}

// Take implements InboxStore.
func (s *MemoryInbox) Take(_ context.Context, user string) ([]*Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now())
	list := s.users[user]
	if len(list) == 0 {
		return nil, nil
	}
	delete(s.users, user)
	out := make([]*Message, len(list))
	for i, e := range list {
		heap.Remove(&s.byExp, e.index)
		out[i] = e.msg
	}
	return out, nil
}

// Remove implements InboxStore.
func (s *MemoryInbox) Remove(_ context.Context, user, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now())
	for _, e := range s.users[user] {
		if e.msg.ID == id {
			heap.Remove(&s.byExp, e.index)
			s.unlist(e)
			return true, nil
		}
	}
	return false, nil
}

// expire drops the entries whose time is up. Expiry is checked on every operation, so
// stale entries cost memory only until the store is next used.
func (s *MemoryInbox) expire(now time.Time) {
	for len(s.byExp) > 0 && !s.byExp[0].expires.After(now) {
		s.unlist(heap.Pop(&s.byExp).(*inboxEntry))
	}
}

// unlist removes e from its user's list, and the list from the map once empty.
func (s *MemoryInbox) unlist(e *inboxEntry) {
	list := s.users[e.user]
	if i := slices.Index(list, e); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(s.users, e.user)
	} else {
		s.users[e.user] = list
	}
}

// expiryHeap orders entries by expiry for container/heap.
type expiryHeap []*inboxEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*inboxEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
