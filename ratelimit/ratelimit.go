package ratelimit

import (
	"hash/maphash"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/time/rate"
)

const (
	defaultIdleTTL = 10 * time.Minute
	defaultMaxKeys = 100_000
	// maxRate is the fastest refill the nanosecond clock can express.
	maxRate = 1e9
	// maxTau bounds Burst·T (in nanoseconds, about 36 years) so that
	// timestamp arithmetic can never overflow an int64.
	maxTau = int64(1) << 60
	// minKeysPerShard keeps the expected number of keys per shard of a full
	// limiter large enough for per-shard LRU eviction to be meaningful;
	// small caps use fewer shards.
	minKeysPerShard = 64
	minShards       = 16
	maxShards       = 1024
	// maxMaxKeys keeps entry indices within int32.
	maxMaxKeys = 1 << 30
	// compactMin and compactRatio decide when a shard that has shrunk is
	// rebuilt: when its slice holds at least compactMin slots and fewer
	// than one in compactRatio of them are live.
	compactMin   = 256
	compactRatio = 8
	// none marks the end of a list.
	none = int32(-1)
	// cacheLine is the padding granularity for shards (two 64-byte lines,
	// to also defeat adjacent-line prefetching).
	cacheLine = 128
)

// Config configures a Keyed limiter. Zero values get the documented
// defaults; negative values are treated like zero.
type Config struct {
	// Rate is the number of tokens added to each key's bucket per second.
	// Zero (or a negative value or NaN) and rate.Inf disable the limiter:
	// every call is allowed and no keys are held. Buckets are tracked with
	// nanosecond resolution, so rates above 1e9 per second act as 1e9.
	Rate rate.Limit
	// Burst is the bucket size: the most tokens a key can spend at once.
	// Zero means max(1, ceil(Rate)). Absurdly large values are lowered so
	// that Burst/Rate stays under about 36 years.
	Burst int
	// IdleTTL is how long a key may go unused before it is forgotten; zero
	// means 10 minutes. A forgotten key comes back with a full bucket, so
	// IdleTTL should be at least Burst/Rate, the time an empty bucket takes
	// to refill. A smaller value is raised to Burst/Rate, so forgetting a
	// key never gives it more tokens than it would have had anyway.
	IdleTTL time.Duration
	// MaxKeys is a hard cap on the number of keys held. Zero means
	// 100,000; values above 2^30 are lowered to 2^30. When the limiter is
	// full, a new key makes room in the shard it hashes to: that shard has
	// already forgotten its idle keys, so it forgets its least recently used
	// key. In the practically unreachable case that the shard holds no keys
	// at all, the new key's call is allowed (as any new key's first call
	// is) without the key being remembered.
	MaxKeys int
	// Now is the clock, for tests. Nil means time.Now.
	Now func() time.Time
}

// Keyed is a set of token buckets, one per key, with bounded memory. It is
// safe for concurrent use. Create one with NewKeyed; a nil *Keyed behaves as
// a disabled limiter.
type Keyed struct {
	disabled bool
	burst    int
	interval int64 // T: nanoseconds per token
	tau      int64 // Burst·T: how far TAT may run ahead of now
	ttl      int64 // idle expiry, nanoseconds, at least tau
	now      func() time.Time
	epoch    time.Time
	seed     maphash.Seed
	maxKeys  int64
	mask     uint64
	shards   []shard

	// held counts keys stored plus in-flight reservations. It is written
	// whenever a key is added or forgotten, so it sits on its own cache
	// line, away from the read-mostly fields above.
	_    [cacheLine]byte
	held atomic.Int64
	_    [cacheLine - 8]byte
}

// entry is the per-key state. Entries live in a per-shard slice and are
// linked into that shard's LRU list by index.
type entry struct {
	key  string
	tat  int64 // theoretical arrival time: the bucket is full at tat
	last int64 // most recent call for this key
	prev int32 // towards the most recently used end
	next int32 // towards the least recently used end; free-list link
}

type shardState struct {
	mu    sync.Mutex
	index map[string]int32
	ents  []entry
	head  int32 // most recently used, or none
	tail  int32 // least recently used, or none
	free  int32 // first reusable slot in ents, or none
}

// shard pads shardState so neighbouring shards' mutexes do not share cache
// lines.
type shard struct {
	shardState
	_ [cacheLine - unsafe.Sizeof(shardState{})%cacheLine]byte
}

// NewKeyed returns a limiter configured by cfg, with zero fields replaced by
// their defaults as described on Config.
func NewKeyed(cfg Config) *Keyed {
	r := float64(cfg.Rate)
	if !(r > 0) || r >= float64(rate.Inf) {
		return &Keyed{disabled: true}
	}

	iv := math.Round(1e9 / r)
	if iv < 1 {
		iv = 1
	}
	if iv > float64(maxTau) {
		iv = float64(maxTau)
	}
	interval := int64(iv)

	burst := cfg.Burst
	if burst <= 0 {
		burst = 1
		if c := math.Ceil(min(r, maxRate)); c > 1 {
			burst = int(c)
		}
	}
	if int64(burst) > maxTau/interval {
		burst = int(maxTau / interval)
	}
	tau := int64(burst) * interval

	ttl := int64(cfg.IdleTTL)
	if ttl <= 0 {
		ttl = int64(defaultIdleTTL)
	}
	ttl = max(ttl, tau)

	maxKeys := cfg.MaxKeys
	if maxKeys <= 0 {
		maxKeys = defaultMaxKeys
	}
	maxKeys = min(maxKeys, maxMaxKeys)

	n := 1
	for n < 4*runtime.GOMAXPROCS(0) {
		n <<= 1
	}
	n = min(max(n, minShards), maxShards)
	for n > 1 && maxKeys/n < minKeysPerShard {
		n >>= 1
	}

	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	k := &Keyed{
		burst:    burst,
		interval: interval,
		tau:      tau,
		ttl:      ttl,
		now:      now,
		epoch:    now(),
		seed:     maphash.MakeSeed(),
		maxKeys:  int64(maxKeys),
		mask:     uint64(n - 1),
		shards:   make([]shard, n),
	}
	for i := range k.shards {
		s := &k.shards[i]
		s.head, s.tail, s.free = none, none, none
	}
	return k
}

// Disabled reports whether the limiter is disabled because Rate is zero
// (or negative) or rate.Inf. A disabled limiter allows every call and holds
// no keys.
func (k *Keyed) Disabled() bool {
	return k == nil || k.disabled
}

// Allow reports whether one token can be taken from key's bucket now, and
// takes it if so. It is AllowN(key, 1).
func (k *Keyed) Allow(key string) bool {
	return k.AllowN(key, 1)
}

// AllowN reports whether n tokens can be taken from key's bucket now, and
// takes them if so; a refused call takes nothing but still counts as use of
// the key for idle expiry. AllowN always allows n <= 0 without touching any
// state, and always refuses n > Burst, which could never succeed.
func (k *Keyed) AllowN(key string, n int) bool {
	if k == nil || k.disabled || n <= 0 {
		return true
	}
	if n > k.burst {
		return false
	}
	need := int64(n) * k.interval
	now := k.clock()
	s := &k.shards[maphash.String(k.seed, key)&k.mask]

	s.mu.Lock()
	k.expire(s, now)
	i, ok := s.index[key]
	if !ok {
		// Reserve a slot; if that overshoots the cap, give back a slot by
		// forgetting this shard's least recently used key.
		if k.held.Add(1) > k.maxKeys {
			if s.tail == none {
				k.held.Add(-1)
				s.mu.Unlock()
				return true
			}
			k.remove(s, s.tail)
		}
		// A new key starts with a full bucket, so n <= Burst always fits.
		s.insert(key, now+need, now)
		s.mu.Unlock()
		return true
	}
	e := &s.ents[i]
	e.last = max(e.last, now)
	s.touch(i)
	tat := max(e.tat, now)
	allowed := tat+need-now <= k.tau
	if allowed {
		e.tat = tat + need
	}
	s.mu.Unlock()
	return allowed
}

// Len returns the number of keys currently held. It first forgets keys that
// have been idle for IdleTTL, so the count covers only keys still tracked.
// Under concurrent use the shards are counted one after another, so the
// result is approximate; it never exceeds MaxKeys.
func (k *Keyed) Len() int {
	if k == nil || k.disabled {
		return 0
	}
	now := k.clock()
	total := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		k.expire(s, now)
		total += len(s.index)
		s.mu.Unlock()
	}
	return min(total, int(k.maxKeys))
}

// clock returns nanoseconds since the limiter was created. With time.Now
// this uses the monotonic clock, so wall-clock steps do not matter.
func (k *Keyed) clock() int64 {
	return int64(k.now().Sub(k.epoch))
}

// expire forgets entries at the cold end of s's LRU list that have been
// idle for at least IdleTTL, then rebuilds s if it has shrunk a lot. The
// caller holds s.mu.
func (k *Keyed) expire(s *shard, now int64) {
	removed := false
	for s.tail != none && now-s.ents[s.tail].last >= k.ttl {
		k.remove(s, s.tail)
		removed = true
	}
	if removed && len(s.ents) >= compactMin && len(s.index)*compactRatio < len(s.ents) {
		s.compact()
	}
}

// insert adds key with the given TAT at the hot end of the list.
func (s *shardState) insert(key string, tat, now int64) {
	// Copy the key so that a key sliced from a large buffer does not keep
	// the whole buffer alive.
	key = strings.Clone(key)
	i := s.free
	if i != none {
		s.free = s.ents[i].next
	} else {
		s.ents = append(s.ents, entry{})
		i = int32(len(s.ents) - 1)
	}
	s.ents[i] = entry{key: key, tat: tat, last: now, prev: none, next: none}
	s.pushFront(i)
	if s.index == nil {
		s.index = make(map[string]int32)
	}
	s.index[key] = i
}

// remove forgets entry i of s, puts its slot on the free list and releases
// its slot in the global count. The caller holds s.mu.
func (k *Keyed) remove(s *shard, i int32) {
	k.held.Add(-1)
	delete(s.index, s.ents[i].key)
	s.unlink(i)
	s.ents[i] = entry{prev: none, next: s.free}
	s.free = i
}

// touch moves entry i to the hot end of the list.
func (s *shardState) touch(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *shardState) pushFront(i int32) {
	e := &s.ents[i]
	e.prev, e.next = none, s.head
	if s.head != none {
		s.ents[s.head].prev = i
	} else {
		s.tail = i
	}
	s.head = i
}

func (s *shardState) unlink(i int32) {
	e := &s.ents[i]
	if e.prev != none {
		s.ents[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next != none {
		s.ents[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = none, none
}

// compact rebuilds the map and slice holding only the live entries, in LRU
// order, so that the memory of a shard that once held many more keys is
// released. Go maps never shrink on their own. Its cost is proportional to
// the live entries, which are a small fraction of those removed since the
// shard last grew, so it is amortised O(1) per removal.
func (s *shardState) compact() {
	live := len(s.index)
	ents := make([]entry, 0, max(2*live, 8))
	var index map[string]int32
	if live > 0 {
		index = make(map[string]int32, live)
	}
	for i := s.head; i != none; i = s.ents[i].next {
		e := s.ents[i]
		j := int32(len(ents))
		e.prev, e.next = j-1, j+1
		ents = append(ents, e)
		index[e.key] = j
	}
	if live > 0 {
		ents[0].prev = none
		ents[live-1].next = none
		s.head, s.tail = 0, int32(live-1)
	} else {
		s.head, s.tail = none, none
	}
	s.ents, s.index, s.free = ents, index, none
}
