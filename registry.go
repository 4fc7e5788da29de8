package switchboard

import "sync"

// The registry indexes live connections by client ID, by user and by topic. Each index is
// split into shards with their own lock, so that work on different keys does not serialise.
// Lock order, to stay free of deadlocks: Conn.subMu → shard locks → Conn.mu (send queue).

const shardCount = 32 // a power of two

func shardOf(key string) uint32 {
	// FNV-1a, inlined to keep the hot path free of allocations.
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h & (shardCount - 1)
}

type connShard struct {
	mu sync.RWMutex
	m  map[string]*Conn
}

type userShard struct {
	mu sync.RWMutex
	m  map[string][]*Conn
}

type topicShard struct {
	mu sync.RWMutex
	m  map[string]map[*Conn]struct{}
	// last holds, for topics with history that have local subscribers, the position of the
	// last publication delivered on this node (history_gap.go). An entry is made only while
	// the topic is in m, and goes with it.
	last map[string]*topicLast
}

type registry struct {
	conns  [shardCount]connShard
	users  [shardCount]userShard
	topics [shardCount]topicShard
}

func (r *registry) init() {
	for i := range r.conns {
		r.conns[i].m = make(map[string]*Conn)
		r.users[i].m = make(map[string][]*Conn)
		r.topics[i].m = make(map[string]map[*Conn]struct{})
		r.topics[i].last = make(map[string]*topicLast)
	}
}

func (r *registry) addConn(c *Conn) {
	s := &r.conns[shardOf(c.id)]
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
}

func (r *registry) removeConn(c *Conn) {
	s := &r.conns[shardOf(c.id)]
	s.mu.Lock()
	if s.m[c.id] == c {
		delete(s.m, c.id)
	}
	s.mu.Unlock()
}

func (r *registry) conn(id string) *Conn {
	s := &r.conns[shardOf(id)]
	s.mu.RLock()
	c := s.m[id]
	s.mu.RUnlock()
	return c
}

// forEachConn calls f for every connection, holding one shard's read lock at a time.
func (r *registry) forEachConn(f func(*Conn)) {
	for i := range r.conns {
		s := &r.conns[i]
		s.mu.RLock()
		for _, c := range s.m {
			f(c)
		}
		s.mu.RUnlock()
	}
}

// snapshot returns every connection, taken out of the locks.
func (r *registry) snapshot() []*Conn {
	var out []*Conn
	r.forEachConn(func(c *Conn) { out = append(out, c) })
	return out
}

// addUser indexes c under user unless the user already has max connections (max < 0: no
// cap), and reports whether c is the user's first connection: the others, if any, are
// closing.
func (r *registry) addUser(user string, c *Conn, max int) (added, first bool) {
	s := &r.users[shardOf(user)]
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.m[user]
	for _, x := range list {
		if x == c {
			return true, false // not a new arrival
		}
	}
	if max >= 0 && len(list) >= max {
		return false, false
	}
	s.m[user] = append(list, c)
	return true, noneLive(list)
}

func (r *registry) removeUser(user string, c *Conn) {
	s := &r.users[shardOf(user)]
	s.mu.Lock()
	list := s.m[user]
	for i, x := range list {
		if x == c {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			list = list[:last]
			break
		}
	}
	if len(list) == 0 {
		delete(s.m, user)
	} else {
		s.m[user] = list
	}
	s.mu.Unlock()
}

func (r *registry) userConnCount(user string) int {
	s := &r.users[shardOf(user)]
	s.mu.RLock()
	n := len(s.m[user])
	s.mu.RUnlock()
	return n
}

// addSub adds c to topic's subscribers and reports whether it is the topic's first local one.
func (r *registry) addSub(topic string, c *Conn) (first bool) {
	s := &r.topics[shardOf(topic)]
	s.mu.Lock()
	set := s.m[topic]
	if set == nil {
		set = make(map[*Conn]struct{})
		s.m[topic] = set
		first = true
	}
	set[c] = struct{}{}
	s.mu.Unlock()
	return first
}

// removeSub removes c from topic's subscribers and reports whether none is left.
func (r *registry) removeSub(topic string, c *Conn) (last bool) {
	s := &r.topics[shardOf(topic)]
	s.mu.Lock()
	set := s.m[topic]
	if set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(s.m, topic)
			delete(s.last, topic)
			last = true
		}
	}
	s.mu.Unlock()
	return last
}

func (r *registry) topicCount() (topics, subs int) {
	for i := range r.topics {
		s := &r.topics[i]
		s.mu.RLock()
		topics += len(s.m)
		for _, set := range s.m {
			subs += len(set)
		}
		s.mu.RUnlock()
	}
	return topics, subs
}
