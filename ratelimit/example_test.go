package ratelimit_test

import (
	"fmt"
	"time"

	"github.com/switchboardrt/switchboard/ratelimit"
)

// Limit connection attempts per client IP to a burst of 3, refilling one
// attempt per second. A fixed clock makes the output deterministic; real
// code leaves Now nil.
func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	attempts := ratelimit.NewKeyed(ratelimit.Config{
		Rate:    1, // per second
		Burst:   3,
		IdleTTL: time.Minute,
		Now:     func() time.Time { return now },
	})

	for i := 1; i <= 4; i++ {
		fmt.Printf("203.0.113.7 attempt %d: %v\n", i, attempts.Allow("203.0.113.7"))
	}
	fmt.Println("198.51.100.2 attempt 1:", attempts.Allow("198.51.100.2"))

	now = now.Add(time.Second)
	fmt.Println("203.0.113.7 after 1s:", attempts.Allow("203.0.113.7"))
	fmt.Println("keys held:", attempts.Len())

	now = now.Add(time.Minute)
	fmt.Println("keys held after a idle minute:", attempts.Len())
	// Output:
	// 203.0.113.7 attempt 1: true
	// 203.0.113.7 attempt 2: true
	// 203.0.113.7 attempt 3: true
	// 203.0.113.7 attempt 4: false
	// 198.51.100.2 attempt 1: true
	// 203.0.113.7 after 1s: true
	// keys held: 2
	// keys held after a idle minute: 0
}

// A zero Rate turns limiting off, which suits a configuration option that
// defaults to "unlimited".
func ExampleKeyed_Disabled() {
	off := ratelimit.NewKeyed(ratelimit.Config{})
	fmt.Println(off.Disabled(), off.AllowN("anyone", 1_000_000), off.Len())
	// Output: true true 0
}
