package ratelimit

import (
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// fakeClock is a manually advanced clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rawLen counts stored keys without sweeping idle ones, unlike Len.
func rawLen(k *Keyed) int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

// exactLen counts stored keys with every shard locked at once, giving an
// exact snapshot even under concurrent use.
func exactLen(k *Keyed) int {
	for i := range k.shards {
		k.shards[i].mu.Lock()
	}
	n := 0
	for i := range k.shards {
		n += len(k.shards[i].index)
	}
	for i := range k.shards {
		k.shards[i].mu.Unlock()
	}
	return n
}

// has reports whether key is stored, without touching it.
func has(k *Keyed, key string) bool {
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		_, ok := s.index[key]
		s.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// checkShard verifies the internal consistency of every shard: list links,
// index and free list agree, and the global count matches.
func checkShards(t *testing.T, k *Keyed) {
	t.Helper()
	total := 0
	for si := range k.shards {
		s := &k.shards[si]
		s.mu.Lock()
		seen := 0
		prev := none
		for i := s.head; i != none; i = s.ents[i].next {
			e := s.ents[i]
			if e.prev != prev {
				t.Fatalf("shard %d: entry %d prev=%d, want %d", si, i, e.prev, prev)
			}
			if j, ok := s.index[e.key]; !ok || j != i {
				t.Fatalf("shard %d: entry %d key %q indexed at %d,%v", si, i, e.key, j, ok)
			}
			prev = i
			seen++
		}
		if prev != s.tail {
			t.Fatalf("shard %d: tail=%d, list ends at %d", si, s.tail, prev)
		}
		free := 0
		for i := s.free; i != none; i = s.ents[i].next {
			free++
		}
		if seen != len(s.index) || seen+free != len(s.ents) {
			t.Fatalf("shard %d: list %d, index %d, free %d, slots %d", si, seen, len(s.index), free, len(s.ents))
		}
		total += seen
		s.mu.Unlock()
	}
	if got := k.held.Load(); got != int64(total) {
		t.Fatalf("held counter = %d, stored keys = %d", got, total)
	}
}

func TestNewKeyedConfig(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		disabled    bool
		burst       int
		interval    time.Duration
		ttl         time.Duration
		maxKeys     int64
		singleShard bool
		multiShards bool
	}{
		{name: "zero rate", cfg: Config{}, disabled: true},
		{name: "negative rate", cfg: Config{Rate: -1, Burst: 5}, disabled: true},
		{name: "NaN rate", cfg: Config{Rate: rate.Limit(math.NaN())}, disabled: true},
		{name: "infinite rate", cfg: Config{Rate: rate.Inf, Burst: 3}, disabled: true},
		{name: "defaults", cfg: Config{Rate: 10}, burst: 10, interval: 100 * time.Millisecond, ttl: 10 * time.Minute, maxKeys: 100_000, multiShards: true},
		{name: "fractional rate burst", cfg: Config{Rate: 2.5}, burst: 3, interval: 400 * time.Millisecond, ttl: 10 * time.Minute, maxKeys: 100_000},
		{name: "slow rate burst", cfg: Config{Rate: 0.5}, burst: 1, interval: 2 * time.Second, ttl: 10 * time.Minute, maxKeys: 100_000},
		{name: "explicit", cfg: Config{Rate: 1, Burst: 4, IdleTTL: time.Hour, MaxKeys: 5000}, burst: 4, interval: time.Second, ttl: time.Hour, maxKeys: 5000},
		{name: "negative fields default", cfg: Config{Rate: 1, Burst: -3, IdleTTL: -time.Second, MaxKeys: -1}, burst: 1, interval: time.Second, ttl: 10 * time.Minute, maxKeys: 100_000},
		{name: "ttl clamped to burst/rate", cfg: Config{Rate: 1, Burst: 100, IdleTTL: time.Second}, burst: 100, interval: time.Second, ttl: 100 * time.Second, maxKeys: 100_000},
		{name: "default ttl clamped", cfg: Config{Rate: 0.01, Burst: 10}, burst: 10, interval: 100 * time.Second, ttl: 1000 * time.Second, maxKeys: 100_000},
		{name: "ttl equal to refill kept", cfg: Config{Rate: 2, Burst: 4, IdleTTL: 2 * time.Second}, burst: 4, interval: 500 * time.Millisecond, ttl: 2 * time.Second, maxKeys: 100_000},
		{name: "rate above clock resolution", cfg: Config{Rate: 5e9, Burst: 1}, burst: 1, interval: 1, ttl: 10 * time.Minute, maxKeys: 100_000},
		{name: "huge rate default burst", cfg: Config{Rate: 1e300}, burst: 1e9, interval: 1, ttl: 10 * time.Minute, maxKeys: 100_000},
		{name: "tiny cap single shard", cfg: Config{Rate: 1, MaxKeys: 10}, burst: 1, interval: time.Second, ttl: 10 * time.Minute, maxKeys: 10, singleShard: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKeyed(tt.cfg)
			if k.Disabled() != tt.disabled {
				t.Fatalf("Disabled() = %v, want %v", k.Disabled(), tt.disabled)
			}
			if tt.disabled {
				return
			}
			if k.burst != tt.burst {
				t.Errorf("burst = %d, want %d", k.burst, tt.burst)
			}
			if k.interval != int64(tt.interval) {
				t.Errorf("interval = %v, want %v", time.Duration(k.interval), tt.interval)
			}
			if k.ttl != int64(tt.ttl) {
				t.Errorf("ttl = %v, want %v", time.Duration(k.ttl), tt.ttl)
			}
			if k.ttl < k.tau {
				t.Errorf("ttl %v below refill time %v", time.Duration(k.ttl), time.Duration(k.tau))
			}
			if k.maxKeys != tt.maxKeys {
				t.Errorf("maxKeys = %d, want %d", k.maxKeys, tt.maxKeys)
			}
			n := len(k.shards)
			if n&(n-1) != 0 || k.mask != uint64(n-1) {
				t.Errorf("%d shards with mask %#x: not a power of two", n, k.mask)
			}
			if tt.singleShard && n != 1 {
				t.Errorf("%d shards, want 1", n)
			}
			if tt.multiShards && n < minShards {
				t.Errorf("%d shards, want at least %d", n, minShards)
			}
		})
	}
}

func TestBurstThenRefill(t *testing.T) {
	tests := []struct {
		rate  rate.Limit
		burst int
	}{
		{1, 1},
		{1, 5},
		{10, 10},
		{3, 4},
		{0.5, 2},
		{1000, 1},
		{7, 0}, // default burst: 7
	}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(float64(tt.rate), 'g', -1, 64)+"/"+strconv.Itoa(tt.burst), func(t *testing.T) {
			clk := newFakeClock()
			k := NewKeyed(Config{Rate: tt.rate, Burst: tt.burst, Now: clk.Now})
			burst := tt.burst
			if burst == 0 {
				burst = int(math.Ceil(float64(tt.rate)))
			}
			step := time.Duration(math.Round(1e9 / float64(tt.rate)))

			for i := range burst {
				if !k.Allow("k") {
					t.Fatalf("call %d of the initial burst refused", i+1)
				}
			}
			if k.Allow("k") {
				t.Fatalf("call %d allowed, burst is %d", burst+1, burst)
			}
			clk.Advance(step - 1)
			if k.Allow("k") {
				t.Fatalf("allowed 1ns before a token is due")
			}
			clk.Advance(1)
			if !k.Allow("k") {
				t.Fatalf("refused after 1/Rate")
			}
			if k.Allow("k") {
				t.Fatalf("two tokens after 1/Rate")
			}
			// A long pause refills to exactly Burst, never more.
			clk.Advance(time.Duration(100*burst) * step)
			got := 0
			for k.Allow("k") {
				got++
			}
			if got != burst {
				t.Fatalf("after a long pause %d allowed, want %d", got, burst)
			}
		})
	}
}

func TestAllowN(t *testing.T) {
	clk := newFakeClock()
	k := NewKeyed(Config{Rate: 1, Burst: 5, Now: clk.Now})
	steps := []struct {
		advance time.Duration
		n       int
		want    bool
	}{
		{0, 0, true},  // n <= 0 always allowed
		{0, -4, true}, // likewise
		{0, 6, false}, // more than Burst can never succeed
		{0, 3, true},  // 5 -> 2
		{0, 3, false}, // refused, takes nothing
		{0, 2, true},  // 2 -> 0
		{0, 1, false},
		{2 * time.Second, 3, false}, // 2 available
		{0, 2, true},
		{10 * time.Second, 5, true}, // refilled to 5, capped
		{0, 1, false},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		if got := k.AllowN("k", st.n); got != st.want {
			t.Fatalf("step %d: AllowN(%d) = %v, want %v", i, st.n, got, st.want)
		}
	}

	// Calls that cannot touch a bucket do not create keys.
	k2 := NewKeyed(Config{Rate: 1, Burst: 2, Now: clk.Now})
	k2.AllowN("zero", 0)
	k2.AllowN("big", 3)
	if n := k2.Len(); n != 0 {
		t.Fatalf("Len() = %d after n<=0 and n>Burst calls, want 0", n)
	}
}

func TestKeysIndependent(t *testing.T) {
	clk := newFakeClock()
	k := NewKeyed(Config{Rate: 1, Burst: 3, Now: clk.Now})
	for range 3 {
		k.Allow("a")
	}
	if k.Allow("a") {
		t.Fatal("a: fourth call allowed")
	}
	for i := range 3 {
		if !k.Allow("b") {
			t.Fatalf("b: call %d refused after a was drained", i+1)
		}
	}
	if k.Allow("b") {
		t.Fatal("b: fourth call allowed")
	}
	clk.Advance(time.Second)
	if !k.Allow("a") || k.Allow("a") {
		t.Fatal("a: want exactly one token after 1s")
	}
	if !k.Allow("c") {
		t.Fatal("c: fresh key refused")
	}
	if n := k.Len(); n != 3 {
		t.Fatalf("Len() = %d, want 3", n)
	}
}

func TestDisabled(t *testing.T) {
	var nilKeyed *Keyed
	tests := []struct {
		name string
		k    *Keyed
	}{
		{"zero rate", NewKeyed(Config{Burst: 1})},
		{"infinite rate", NewKeyed(Config{Rate: rate.Inf, Burst: 1, MaxKeys: 1})},
		{"negative rate", NewKeyed(Config{Rate: -5})},
		{"nil", nilKeyed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.k.Disabled() {
				t.Fatal("Disabled() = false")
			}
			for i := range 1000 {
				if !tt.k.Allow(strconv.Itoa(i % 3)) {
					t.Fatalf("call %d refused", i)
				}
			}
			if !tt.k.AllowN("x", 1<<30) {
				t.Fatal("AllowN(huge) refused")
			}
			if n := tt.k.Len(); n != 0 {
				t.Fatalf("Len() = %d, want 0", n)
			}
		})
	}
	if NewKeyed(Config{Rate: 1}).Disabled() {
		t.Fatal("Rate 1 reported disabled")
	}
}

func TestIdleTTLClamp(t *testing.T) {
	clk := newFakeClock()
	// Refill takes Burst/Rate = 100s, so the 1s TTL must be raised to 100s.
	k := NewKeyed(Config{Rate: 1, Burst: 100, IdleTTL: time.Second, Now: clk.Now})
	if !k.AllowN("k", 100) || k.Allow("k") {
		t.Fatal("could not drain the bucket")
	}
	clk.Advance(2 * time.Second) // past the requested TTL, within the clamp
	if n := k.Len(); n != 1 {
		t.Fatalf("Len() = %d after 2s, want 1 (key forgotten before its bucket refilled)", n)
	}
	got := 0
	for k.Allow("k") {
		got++
	}
	if got != 2 {
		t.Fatalf("%d allowed 2s after draining, want 2", got)
	}
	clk.Advance(100 * time.Second)
	if n := k.Len(); n != 0 {
		t.Fatalf("Len() = %d after the clamped TTL, want 0", n)
	}
	// Forgotten after a full refill: the fresh bucket equals the refilled one.
	if !k.AllowN("k", 100) || k.Allow("k") {
		t.Fatal("want exactly Burst for a forgotten key")
	}
}

func TestIdleEviction(t *testing.T) {
	clk := newFakeClock()
	k := NewKeyed(Config{Rate: 1, Burst: 1, IdleTTL: time.Minute, Now: clk.Now})
	k.Allow("old")
	clk.Advance(30 * time.Second)
	k.Allow("young")
	clk.Advance(30 * time.Second) // old idle 60s, young 30s
	if n := k.Len(); n != 1 || has(k, "old") || !has(k, "young") {
		t.Fatalf("Len() = %d, old held %v, young held %v; want only young", n, has(k, "old"), has(k, "young"))
	}
	// A refused call still counts as use.
	clk.Advance(59 * time.Second)
	if !k.Allow("young") || k.Allow("young") {
		t.Fatal("young: want one token then refusal")
	}
	clk.Advance(59 * time.Second)
	if !has(k, "young") || k.Len() != 1 {
		t.Fatal("young forgotten less than IdleTTL after its last call")
	}
	checkShards(t, k)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestBoundedMemory100k feeds waves of 100,000 distinct keys, letting each
// wave go idle before the next, and checks that key count and heap return to
// a small baseline instead of accumulating.
func TestBoundedMemory100k(t *testing.T) {
	const keys = 100_000
	const waves = 5
	clk := newFakeClock()
	k := NewKeyed(Config{Rate: 1, Burst: 2, IdleTTL: time.Minute, Now: clk.Now})

	var heapWave1 uint64
	for w := 1; w <= waves; w++ {
		prefix := "w" + strconv.Itoa(w) + "-"
		for i := range keys {
			if !k.Allow(prefix + strconv.Itoa(i)) {
				t.Fatalf("wave %d: fresh key %d refused", w, i)
			}
			clk.Advance(time.Microsecond) // 0.1s per wave, well inside IdleTTL
		}
		if n := k.Len(); n != keys {
			t.Fatalf("wave %d: Len() = %d, want %d", w, n, keys)
		}
		heap := heapInUse()
		if w == 1 {
			heapWave1 = heap
			t.Logf("heap after wave 1: %d bytes (%.0f bytes/key)", heap, float64(heap)/keys)
		}
		if w == waves {
			t.Logf("heap after wave %d: %d bytes", w, heap)
			if heap >= 2*heapWave1 {
				t.Fatalf("heap grew from %d after wave 1 to %d after wave %d", heapWave1, heap, w)
			}
		}

		// Let the wave go idle; a modest amount of further traffic
		// (which reaches every shard) must sweep it out.
		clk.Advance(time.Minute + time.Second)
		for i := range 10_000 {
			k.Allow("between" + strconv.Itoa(w) + "-" + strconv.Itoa(i))
		}
		if n := rawLen(k); n != 10_000 {
			t.Fatalf("wave %d: %d keys stored after idle sweep by Allow, want 10000", w, n)
		}
		clk.Advance(time.Minute + time.Second)
		if n := k.Len(); n != 0 {
			t.Fatalf("wave %d: Len() = %d after everything went idle, want 0", w, n)
		}
	}
	checkShards(t, k)

	// Shards that shrank were rebuilt, so the idle limiter is small again.
	if heap := heapInUse(); heap >= heapWave1/2 {
		t.Fatalf("idle limiter still holds %d bytes of heap (wave 1 peak %d)", heap, heapWave1)
	}
	runtime.KeepAlive(k)
}

func TestMaxKeys(t *testing.T) {
	for _, maxKeys := range []int{1, 2, 10, 100, 1000, 5000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			clk := newFakeClock()
			k := NewKeyed(Config{Rate: 1, Burst: 1, MaxKeys: maxKeys, Now: clk.Now})
			for i := range 3 * maxKeys {
				key := "k" + strconv.Itoa(i)
				if !k.Allow(key) {
					t.Fatalf("fresh key %d refused", i)
				}
				if n := k.Len(); n > maxKeys {
					t.Fatalf("after %d keys Len() = %d > MaxKeys %d", i+1, n, maxKeys)
				}
				if !has(k, key) {
					t.Fatalf("newest key %d not held", i)
				}
				clk.Advance(time.Millisecond)
			}
			if n := k.Len(); n < maxKeys*9/10 {
				t.Fatalf("Len() = %d, want close to MaxKeys %d", n, maxKeys)
			}
			checkShards(t, k)
		})
	}
}

func TestMaxKeysEvictsLeastRecentlyUsed(t *testing.T) {
	clk := newFakeClock()
	k := NewKeyed(Config{Rate: 1, Burst: 1, MaxKeys: 3, Now: clk.Now}) // one shard
	for _, key := range []string{"a", "b", "c"} {
		k.Allow(key)
		clk.Advance(time.Second)
	}
	k.Allow("a") // refused, but a is now the most recently used
	k.Allow("d") // evicts b
	for key, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if has(k, key) != want {
			t.Errorf("key %q held = %v, want %v", key, !want, want)
		}
	}
	if k.Allow("a") {
		t.Error("a kept its state but was allowed again")
	}
	checkShards(t, k)
}

func TestConcurrent(t *testing.T) {
	const (
		goroutines = 16
		shared     = 50
		burst      = 7
		calls      = 2000
	)
	clk := newFakeClock() // frozen: no refill during the test
	k := NewKeyed(Config{Rate: 1, Burst: burst, MaxKeys: 1 << 20, Now: clk.Now})
	var allowed [shared]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			own := "own-" + strconv.Itoa(g) + "-"
			for i := range calls {
				j := (i*7 + g) % shared
				if k.Allow("shared-" + strconv.Itoa(j)) {
					allowed[j].Add(1)
				}
				k.AllowN(own+strconv.Itoa(i%100), 1+i%3)
				if i%500 == 0 {
					k.Len()
				}
			}
		})
	}
	wg.Wait()
	for j := range shared {
		if got := allowed[j].Load(); got != burst {
			t.Errorf("shared key %d: %d allowed across goroutines, want exactly %d", j, got, burst)
		}
	}
	if n := k.Len(); n != shared+goroutines*100 {
		t.Errorf("Len() = %d, want %d", n, shared+goroutines*100)
	}
	checkShards(t, k)
}

// TestConcurrentChurn hammers a small cap with fresh keys and a moving clock
// from many goroutines, exercising eviction and compaction under -race.
func TestConcurrentChurn(t *testing.T) {
	clk := newFakeClock()
	const maxKeys = 2000
	k := NewKeyed(Config{Rate: 100, Burst: 5, IdleTTL: time.Second, MaxKeys: maxKeys, Now: clk.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				k.Allow(strconv.Itoa(g) + ":" + strconv.Itoa(i))
				if g == 0 && i%100 == 0 {
					clk.Advance(300 * time.Millisecond)
				}
				if i%250 == 0 {
					if n := exactLen(k); n > maxKeys {
						t.Errorf("%d keys stored > MaxKeys %d", n, maxKeys)
					}
					if n := k.Len(); n > maxKeys {
						t.Errorf("Len() = %d > MaxKeys %d", n, maxKeys)
					}
				}
			}
		})
	}
	wg.Wait()
	checkShards(t, k)
}
