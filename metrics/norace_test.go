//go:build !race

package metrics_test

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = false
