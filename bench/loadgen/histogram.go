package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts durations in log-linear buckets of microseconds: exact below 128 µs,
// then 128 buckets per power of two (relative error under 0.8%). It is safe for
// concurrent use and never allocates after creation.
type histogram struct {
	counts [58 << histSubBits]atomic.Int64
	total  atomic.Int64
	max    atomic.Int64 // µs
}

const histSubBits = 7

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	g := bits.Len64(v) - histSubBits // ≥ 1
	sub := int(v>>(g-1)) - 1<<histSubBits
	return g<<histSubBits | sub
}

// histUpper returns the largest value that falls into bucket i.
func histUpper(i int) uint64 {
	g, sub := i>>histSubBits, i&(1<<histSubBits-1)
	if g == 0 {
		return uint64(sub)
	}
	return (uint64(1<<histSubBits+sub+1) << (g - 1)) - 1
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[histIndex(uint64(us))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// quantile returns the value below or at which a fraction q of the samples lie (the
// upper edge of the bucket holding it), or 0 without samples.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			us := int64(histUpper(i))
			if m := h.max.Load(); us > m {
				us = m
			}
			return time.Duration(us) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}
