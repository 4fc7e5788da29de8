package switchboard

import (
	"fmt"
	"sync/atomic"
)

// State is the life-cycle state of a connection. See the transition table in CanTransition.
type State int32

// Connection states.
const (
	StateInitializing   State = iota // created, before the WebSocket upgrade
	StateConnecting                  // the upgrade is in progress
	StateConnected                   // upgraded, not authenticated
	StateAuthenticating              // a token is being checked
	StateAuthenticated               // an identity is attached
	StateDisconnecting               // a close was started; inbound messages are drained and ignored
	StateDisconnected                // closed and unregistered; terminal
	StateError                       // failed abnormally (network or protocol error); next is StateDisconnected
)

var stateNames = [...]string{
	StateInitializing:   "INITIALIZING",
	StateConnecting:     "CONNECTING",
	StateConnected:      "CONNECTED",
	StateAuthenticating: "AUTHENTICATING",
	StateAuthenticated:  "AUTHENTICATED",
	StateDisconnecting:  "DISCONNECTING",
	StateDisconnected:   "DISCONNECTED",
	StateError:          "ERROR",
}

// String returns the state's name as used in docs and logs, e.g. "AUTHENTICATED".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

func bit(s State) uint16 { return 1 << uint(s) }

// transitions[from] is the set of states reachable from `from` in one step.
var transitions = [...]uint16{
	StateInitializing:   bit(StateConnecting) | bit(StateDisconnected) | bit(StateError),
	StateConnecting:     bit(StateConnected) | bit(StateDisconnected) | bit(StateError),
	StateConnected:      bit(StateAuthenticating) | bit(StateDisconnecting) | bit(StateError),
	StateAuthenticating: bit(StateAuthenticated) | bit(StateConnected) | bit(StateDisconnecting) | bit(StateError),
	StateAuthenticated:  bit(StateAuthenticating) | bit(StateDisconnecting) | bit(StateError),
	StateDisconnecting:  bit(StateDisconnected) | bit(StateError),
	StateDisconnected:   0,
	StateError:          bit(StateDisconnected),
}

// CanTransition reports whether the transition table allows moving from one state to another.
// A failed authentication moves AUTHENTICATING back to CONNECTED (or to AUTHENTICATED when
// the connection already had an identity, through the AUTHENTICATED → AUTHENTICATING edge);
// every live state may go to DISCONNECTING or ERROR.
func CanTransition(from, to State) bool {
	if from < 0 || int(from) >= len(transitions) {
		return false
	}
	return transitions[from]&bit(to) != 0
}

// Live reports whether the state is one in which the connection can send and receive.
func (s State) Live() bool {
	return s == StateConnected || s == StateAuthenticating || s == StateAuthenticated
}

// stateBox holds a State readable and changeable without data races.
type stateBox struct{ v atomic.Int32 }

func (b *stateBox) load() State { return State(b.v.Load()) }

// move changes the state to `to` if the table allows it from the current state, and returns
// the previous state.
func (b *stateBox) move(to State) (State, error) {
	for {
		cur := State(b.v.Load())
		if !CanTransition(cur, to) {
			return cur, fmt.Errorf("%w: %s → %s", ErrIllegalTransition, cur, to)
		}
		if b.v.CompareAndSwap(int32(cur), int32(to)) {
			return cur, nil
		}
	}
}

// moveFrom changes the state from exactly `from` to `to`; it fails if the state is not `from`.
func (b *stateBox) moveFrom(from, to State) error {
	if !CanTransition(from, to) {
		return fmt.Errorf("%w: %s → %s", ErrIllegalTransition, from, to)
	}
	if !b.v.CompareAndSwap(int32(from), int32(to)) {
		return fmt.Errorf("%w: %s → %s (state is %s)", ErrIllegalTransition, from, to, b.load())
	}
	return nil
}
