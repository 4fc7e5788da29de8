package ratelimit

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/time/rate"
)

const benchKeys = 100_000

// makeKeys returns n distinct IPv4-looking keys.
func makeKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
	}
	return keys
}

// BenchmarkAllow measures single-goroutine Allow with the real clock: on one
// hot key, and cycling over 100k resident keys.
func BenchmarkAllow(b *testing.B) {
	b.Run("one-key", func(b *testing.B) {
		k := NewKeyed(Config{Rate: 1e6, Burst: 1000})
		b.ReportAllocs()
		for b.Loop() {
			k.Allow("10.0.0.1")
		}
	})
	b.Run("100k-keys", func(b *testing.B) {
		keys := makeKeys(benchKeys)
		k := NewKeyed(Config{Rate: 10, MaxKeys: 2 * benchKeys})
		for _, key := range keys {
			k.Allow(key)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k.Allow(keys[i])
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
	b.Run("disabled", func(b *testing.B) {
		k := NewKeyed(Config{})
		b.ReportAllocs()
		for b.Loop() {
			k.Allow("10.0.0.1")
		}
	})
}

// BenchmarkAllowParallel measures Allow from GOMAXPROCS goroutines over 100k
// keys, each goroutine starting at a different random offset.
func BenchmarkAllowParallel(b *testing.B) {
	keys := makeKeys(benchKeys)
	k := NewKeyed(Config{Rate: 10, MaxKeys: 2 * benchKeys})
	for _, key := range keys {
		k.Allow(key)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			k.Allow(keys[i])
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
}

// BenchmarkAllowChurn measures the worst case for memory management: every
// call brings a never-seen key into a full limiter, forcing an eviction.
func BenchmarkAllowChurn(b *testing.B) {
	k := NewKeyed(Config{Rate: 10, MaxKeys: 10_000})
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 24)
		for pb.Next() {
			buf = strconv.AppendInt(buf[:0], next.Add(1), 10)
			k.Allow(string(buf))
		}
	})
	if n := k.Len(); n > 10_000 {
		b.Fatalf("Len() = %d", n)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryPerKey reports the heap cost of holding 100k keys
// (excluding the caller's own copies of the key strings), for Keyed and, for
// comparison, for a plain map of *rate.Limiter. It also reports the size of
// the per-key bucket struct of each.
func BenchmarkMemoryPerKey(b *testing.B) {
	keys := makeKeys(benchKeys)
	b.Run("Keyed", func(b *testing.B) {
		var k *Keyed
		for b.Loop() {
			k = nil
			before := heapAlloc()
			k = NewKeyed(Config{Rate: 10, MaxKeys: 2 * benchKeys})
			for _, key := range keys {
				k.Allow(key)
			}
			b.ReportMetric(float64(heapAlloc()-before)/benchKeys, "B/key")
		}
		b.ReportMetric(float64(unsafe.Sizeof(entry{})), "B/entry-struct")
		runtime.KeepAlive(k)
	})
	b.Run("map-of-rate.Limiter", func(b *testing.B) {
		var m map[string]*rate.Limiter
		for b.Loop() {
			m = nil
			before := heapAlloc()
			m = make(map[string]*rate.Limiter)
			for _, key := range keys {
				m[key] = rate.NewLimiter(10, 10)
				m[key].Allow()
			}
			b.ReportMetric(float64(heapAlloc()-before)/benchKeys, "B/key")
		}
		b.ReportMetric(float64(unsafe.Sizeof(rate.Limiter{})), "B/entry-struct")
		runtime.KeepAlive(m)
	})
}
