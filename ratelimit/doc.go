// Package ratelimit provides keyed token buckets whose memory stays bounded no
// matter how many distinct keys are presented. Typical keys are a client IP
// (to limit connection attempts) or a user ID (to limit publishes).
//
// # Algorithm
//
// Each key owns a token bucket that holds at most Burst tokens and refills at
// Rate tokens per second; a request for n tokens succeeds when the bucket
// holds at least n, and then removes them. Rate is a rate.Limit from
// golang.org/x/time/rate, so configuration reads the same as for
// rate.Limiter, but the bucket itself is not a rate.Limiter: it is stored as a
// single "theoretical arrival time" (TAT), the instant at which the bucket
// would be full again. With T = 1/Rate (kept as whole nanoseconds) and the
// current time now, a request for n tokens is allowed exactly when
//
//	max(TAT, now) + n·T − now ≤ Burst·T
//
// and, if allowed, TAT becomes max(TAT, now) + n·T. This is the same token
// bucket expressed as one int64, evaluated in integer arithmetic, so a fresh
// key admits exactly Burst requests at once and then one more every 1/Rate,
// with no floating-point drift. A key that has never been seen, or has been
// forgotten, starts with a full bucket.
//
// # Memory bound
//
// Keys are spread over a power-of-two number of shards by a randomly seeded
// hash, and each shard has its own mutex, so requests for different keys
// rarely contend. Within a shard, entries sit in a slice and are threaded on
// a doubly linked least-recently-used list (int32 indices, no per-entry heap
// object apart from the key's bytes). About 40 bytes of bucket state plus the
// map slot and the key are kept per key; see the package benchmarks for
// measured figures.
//
// Two rules keep memory bounded, both enforced inline by the calls that touch
// a shard; the package starts no goroutines and there is nothing to stop:
//
//   - Idle expiry. A key not used for IdleTTL is forgotten. Every call first
//     pops entries off the cold end of its shard's LRU list while they have
//     been idle that long. Each entry is removed at most once per insertion,
//     so the cost is amortised O(1) per call. Len performs the same sweep on
//     every shard. When a shard has shrunk to a small fraction of its former
//     size, its map and slice are rebuilt so the memory is returned to the
//     runtime, not just kept for reuse.
//   - Hard cap. A shared atomic counter reserves a slot for every new key.
//     If the reservation would take the total past MaxKeys, the shard the new
//     key hashes to, which has just dropped its idle keys (rule above),
//     evicts its least recently used key, the oldest one in that shard, to
//     make room. The number of keys held therefore never exceeds MaxKeys.
//     Only the new key's shard is consulted, so no call ever holds two shard
//     locks; with a seeded hash all shards age alike, so the victim is close
//     to the globally oldest key.
//
// Forgetting a key hands it a full bucket the next time it appears. For idle
// expiry this is harmless provided IdleTTL is at least Burst/Rate, the time an
// empty bucket needs to refill completely, so NewKeyed raises a smaller
// IdleTTL to that value. Eviction by the hard cap can forget a key that is
// still active; size MaxKeys above the number of keys expected to be active
// within one IdleTTL so that the cap only bites under abuse (for example a
// flood of spoofed keys), where failing open for some keys is preferable to
// unbounded memory.
package ratelimit
