//go:build !race

package switchboard

// raceEnabled: the race detector changes allocation counts (sync.Pool drops items at random).
const raceEnabled = false
