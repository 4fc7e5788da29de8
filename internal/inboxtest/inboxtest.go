// Package inboxtest is the contract of switchboard.InboxStore as a test suite, run against
// every implementation (the in-memory store of the root package, the Redis one of
// adapters/redis), so that they cannot drift apart.
package inboxtest

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboardrt/switchboard"
)

// Store is one implementation under test. New returns an empty store for one test;
// whatever it allocates is released by the test's cleanups.
type Store struct {
	Name string
	New  func(t *testing.T) switchboard.InboxStore
}

// Run runs the contract against each store, as subtests named after the case and store.
func Run(t *testing.T, stores ...Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, s switchboard.InboxStore)
	}{
		{"OrderAndTakeEmpties", testOrder},
		{"EmptyInbox", testEmpty},
		{"UsersApart", testUsersApart},
		{"SizeDropsOldest", testSize},
		{"TTL", testTTL},
		{"Remove", testRemove},
		{"AwkwardIDs", testAwkwardIDs},
		{"ConcurrentExactlyOnce", testConcurrent},
	}
	for _, c := range cases {
		for _, st := range stores {
			t.Run(c.name+"/"+st.Name, func(t *testing.T) { c.run(t, st.New(t)) })
		}
	}
}

const hour = time.Hour

// Msg returns a NOTIFICATION-like message with the given ID and a payload naming n.
func Msg(t testing.TB, id string, n int) *switchboard.Message {
	t.Helper()
	m, err := switchboard.NewMessage(switchboard.TypeEvent, map[string]any{"event": "n", "data": n, "text": "é \"q\" \u2028"})
	if err != nil {
		t.Fatal(err)
	}
	m.ID = id
	m.CorrelationID = "corr-" + id
	return m
}

func put(t *testing.T, s switchboard.InboxStore, user string, m *switchboard.Message, size int, ttl time.Duration) {
	t.Helper()
	if err := s.Put(context.Background(), user, m, size, ttl); err != nil {
		t.Fatalf("Put(%s, %s): %v", user, m.ID, err)
	}
}

func take(t *testing.T, s switchboard.InboxStore, user string) []*switchboard.Message {
	t.Helper()
	got, err := s.Take(context.Background(), user)
	if err != nil {
		t.Fatalf("Take(%s): %v", user, err)
	}
	return got
}

func remove(t *testing.T, s switchboard.InboxStore, user, id string) bool {
	t.Helper()
	ok, err := s.Remove(context.Background(), user, id)
	if err != nil {
		t.Fatalf("Remove(%s, %s): %v", user, id, err)
	}
	return ok
}

// expect checks that got are want, in order and field by field.
func expect(t *testing.T, got []*switchboard.Message, want ...*switchboard.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages %v, want %d %v", len(got), ids(got), len(want), ids(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Type != w.Type || g.Timestamp != w.Timestamp || g.CorrelationID != w.CorrelationID ||
			g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("message %d: got %+v (payload %s), want %+v (payload %s)", i, g, g.Payload, w, w.Payload)
		}
	}
}

func ids(list []*switchboard.Message) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.ID
	}
	return out
}

func testOrder(t *testing.T, s switchboard.InboxStore) {
	var want []*switchboard.Message
	for i := range 5 {
		m := Msg(t, fmt.Sprintf("m%d", i), i)
		want = append(want, m)
		put(t, s, "alice", m, 10, hour)
	}
	expect(t, take(t, s, "alice"), want...)
	expect(t, take(t, s, "alice")) // taken means gone
}

func testEmpty(t *testing.T, s switchboard.InboxStore) {
	expect(t, take(t, s, "nobody"))
	if remove(t, s, "nobody", "x") {
		t.Fatal("Remove from an empty inbox reported a removal")
	}
}

func testUsersApart(t *testing.T, s switchboard.InboxStore) {
	a, b := Msg(t, "a1", 1), Msg(t, "b1", 2)
	put(t, s, "alice", a, 10, hour)
	put(t, s, "bob", b, 10, hour)
	if remove(t, s, "alice", "b1") {
		t.Fatal("Remove took bob's message out of alice's inbox")
	}
	expect(t, take(t, s, "alice"), a)
	expect(t, take(t, s, "bob"), b)
}

func testSize(t *testing.T, s switchboard.InboxStore) {
	var all []*switchboard.Message
	for i := range 7 {
		m := Msg(t, fmt.Sprintf("m%d", i), i)
		all = append(all, m)
		put(t, s, "alice", m, 3, hour)
	}
	expect(t, take(t, s, "alice"), all[4:]...)
}

func testTTL(t *testing.T, s switchboard.InboxStore) {
	short := 150 * time.Millisecond
	old1, old2, fresh := Msg(t, "old1", 1), Msg(t, "old2", 2), Msg(t, "fresh", 3)
	put(t, s, "alice", old1, 10, short)
	put(t, s, "alice", old2, 10, short)
	put(t, s, "bob", Msg(t, "bob", 4), 10, short)
	time.Sleep(2 * short) // past the TTL: what follows must not see those messages
	put(t, s, "alice", fresh, 10, hour)
	if remove(t, s, "alice", "old2") {
		t.Fatal("Remove reported removing an expired message")
	}
	expect(t, take(t, s, "alice"), fresh)
	expect(t, take(t, s, "bob"))
}

func testRemove(t *testing.T, s switchboard.InboxStore) {
	m1, m2, m3 := Msg(t, "m1", 1), Msg(t, "m2", 2), Msg(t, "m3", 3)
	for _, m := range []*switchboard.Message{m1, m2, m3} {
		put(t, s, "alice", m, 10, hour)
	}
	if !remove(t, s, "alice", "m2") {
		t.Fatal("Remove did not find m2")
	}
	if remove(t, s, "alice", "m2") {
		t.Fatal("Remove found m2 twice")
	}
	if remove(t, s, "alice", "m") {
		t.Fatal("Remove matched a prefix of an ID")
	}
	expect(t, take(t, s, "alice"), m1, m3)
	put(t, s, "alice", m1, 10, hour)
	expect(t, take(t, s, "alice"), m1) // a removal leaves a usable inbox behind
	if remove(t, s, "alice", "m1") {
		t.Fatal("Remove found a taken message")
	}
}

func testAwkwardIDs(t *testing.T, s switchboard.InboxStore) {
	var want []*switchboard.Message
	for i, id := range []string{"12:34:x", "7", "", "ü:ñ", "a\nb", "{\"id\":1}"} {
		m := Msg(t, id, i)
		want = append(want, m)
		put(t, s, "user:with:colons", m, 10, hour)
	}
	if !remove(t, s, "user:with:colons", "7") || !remove(t, s, "user:with:colons", "12:34:x") {
		t.Fatal("Remove did not find an ID with digits and colons")
	}
	expect(t, take(t, s, "user:with:colons"), want[2:]...)
}

// testConcurrent races Puts against Takes and Removes on one inbox: every message put must
// come out exactly once, through one Take or one successful Remove.
func testConcurrent(t *testing.T, s switchboard.InboxStore) {
	const putters, each = 4, 50
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	note := func(id string) {
		mu.Lock()
		seen[id]++
		mu.Unlock()
	}
	msgs := make([][]*switchboard.Message, putters)
	for p := range putters {
		for i := range each {
			msgs[p] = append(msgs[p], Msg(t, fmt.Sprintf("p%d-%d", p, i), i))
		}
	}
	var wg, putWG sync.WaitGroup
	errs := make(chan error, 16)
	for p := range putters {
		putWG.Add(1)
		go func() {
			defer putWG.Done()
			for i, m := range msgs[p] {
				id := m.ID
				if err := s.Put(ctx, "alice", m, putters*each, hour); err != nil {
					errs <- err
					return
				}
				if i%3 == 0 { // like a publisher that finds the user online
					ok, err := s.Remove(ctx, "alice", id)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						note(id)
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	wg.Add(1)
	go func() { // like logins, over and over
		defer wg.Done()
		for {
			got, err := s.Take(ctx, "alice")
			if err != nil {
				errs <- err
				return
			}
			for _, m := range got {
				note(m.ID)
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	putWG.Wait()
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, m := range take(t, s, "alice") {
		note(m.ID)
	}
	var wrong []string
	for p := range putters {
		for i := range each {
			id := fmt.Sprintf("p%d-%d", p, i)
			if seen[id] != 1 {
				wrong = append(wrong, fmt.Sprintf("%s×%d", id, seen[id]))
			}
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 0 || len(seen) != putters*each {
		t.Fatalf("not exactly once: %v (%d distinct of %d)", wrong, len(seen), putters*each)
	}
}
