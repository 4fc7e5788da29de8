package switchboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

var wpAllStates = []State{
	StateInitializing, StateConnecting, StateConnected, StateAuthenticating,
	StateAuthenticated, StateDisconnecting, StateDisconnected, StateError,
}

// wpEdges is the transition table of the design, edge by edge.
var wpEdges = []struct{ from, to State }{
	{StateInitializing, StateConnecting},
	{StateInitializing, StateDisconnected},
	{StateInitializing, StateError},
	{StateConnecting, StateConnected},
	{StateConnecting, StateDisconnected},
	{StateConnecting, StateError},
	{StateConnected, StateAuthenticating},
	{StateConnected, StateDisconnecting},
	{StateConnected, StateError},
	{StateAuthenticating, StateAuthenticated},
	{StateAuthenticating, StateConnected}, // failed first authentication
	{StateAuthenticating, StateDisconnecting},
	{StateAuthenticating, StateError},
	{StateAuthenticated, StateAuthenticating}, // re-authentication
	{StateAuthenticated, StateDisconnecting},
	{StateAuthenticated, StateError},
	{StateDisconnecting, StateDisconnected},
	{StateDisconnecting, StateError},
	{StateError, StateDisconnected},
}

func wpIsEdge(from, to State) bool {
	for _, e := range wpEdges {
		if e.from == from && e.to == to {
			return true
		}
	}
	return false
}

func TestStateTransitionTable(t *testing.T) {
	for _, e := range wpEdges {
		if !CanTransition(e.from, e.to) {
			t.Errorf("CanTransition(%s, %s) = false, want true", e.from, e.to)
		}
	}
	// Every other pair is refused: the table above is the whole table.
	for _, from := range wpAllStates {
		for _, to := range wpAllStates {
			if !wpIsEdge(from, to) && CanTransition(from, to) {
				t.Errorf("CanTransition(%s, %s) = true, want false", from, to)
			}
		}
	}
	// A few illegal ones by name, and states out of range.
	illegal := []struct{ from, to State }{
		{StateDisconnected, StateConnected},
		{StateDisconnected, StateConnecting},
		{StateDisconnected, StateDisconnected},
		{StateInitializing, StateAuthenticated},
		{StateInitializing, StateConnected},
		{StateConnecting, StateAuthenticated},
		{StateConnected, StateAuthenticated}, // must pass through AUTHENTICATING
		{StateConnected, StateDisconnected},  // must pass through DISCONNECTING
		{StateAuthenticated, StateConnected}, // an identity is never dropped
		{StateDisconnecting, StateConnected},
		{StateError, StateConnected},
		{StateConnected, StateConnected},
		{State(-1), StateConnected},
		{State(8), StateDisconnected},
		{State(100), StateConnecting},
		{StateConnected, State(8)},
		{StateConnected, State(-1)},
		{StateConnected, State(100)},
	}
	for _, e := range illegal {
		if CanTransition(e.from, e.to) {
			t.Errorf("CanTransition(%s, %s) = true, want false", e.from, e.to)
		}
	}
}

func TestStateNamesAndLive(t *testing.T) {
	cases := []struct {
		s    State
		name string
		live bool
	}{
		{StateInitializing, "INITIALIZING", false},
		{StateConnecting, "CONNECTING", false},
		{StateConnected, "CONNECTED", true},
		{StateAuthenticating, "AUTHENTICATING", true},
		{StateAuthenticated, "AUTHENTICATED", true},
		{StateDisconnecting, "DISCONNECTING", false},
		{StateDisconnected, "DISCONNECTED", false},
		{StateError, "ERROR", false},
		{State(8), "State(8)", false},
		{State(-1), "State(-1)", false},
	}
	for _, tc := range cases {
		if got := tc.s.String(); got != tc.name {
			t.Errorf("State(%d).String() = %q, want %q", int32(tc.s), got, tc.name)
		}
		if got := fmt.Sprint(tc.s); got != tc.name {
			t.Errorf("fmt.Sprint(State(%d)) = %q, want %q", int32(tc.s), got, tc.name)
		}
		if got := tc.s.Live(); got != tc.live {
			t.Errorf("%s.Live() = %v, want %v", tc.name, got, tc.live)
		}
	}
	var zero State
	if zero != StateInitializing {
		t.Fatalf("zero State is %s, want INITIALIZING", zero)
	}
}

// stateBox.move and moveFrom refuse illegal moves with ErrIllegalTransition and leave the
// state as it was.
func TestStateBoxMoves(t *testing.T) {
	t.Run("move", func(t *testing.T) {
		for _, from := range wpAllStates {
			for _, to := range wpAllStates {
				var b stateBox
				b.v.Store(int32(from))
				prev, err := b.move(to)
				if prev != from {
					t.Errorf("move %s → %s returned previous state %s", from, to, prev)
				}
				if wpIsEdge(from, to) {
					if err != nil || b.load() != to {
						t.Errorf("move %s → %s: err %v, state %s", from, to, err, b.load())
					}
					continue
				}
				if !errors.Is(err, ErrIllegalTransition) {
					t.Errorf("move %s → %s: err %v, want ErrIllegalTransition", from, to, err)
				}
				if b.load() != from {
					t.Errorf("illegal move %s → %s changed the state to %s", from, to, b.load())
				}
			}
		}
	})
	t.Run("moveFrom", func(t *testing.T) {
		for _, cur := range wpAllStates {
			for _, e := range wpEdges {
				var b stateBox
				b.v.Store(int32(cur))
				err := b.moveFrom(e.from, e.to)
				if cur == e.from {
					if err != nil || b.load() != e.to {
						t.Errorf("moveFrom(%s, %s) in %s: err %v, state %s", e.from, e.to, cur, err, b.load())
					}
					continue
				}
				// A legal edge, but the state is not its start.
				if !errors.Is(err, ErrIllegalTransition) || b.load() != cur {
					t.Errorf("moveFrom(%s, %s) in %s: err %v, state %s; want ErrIllegalTransition and no change", e.from, e.to, cur, err, b.load())
				}
			}
		}
		// Illegal edges are refused even when the state matches `from`.
		for _, e := range []struct{ from, to State }{
			{StateDisconnected, StateConnected},
			{StateInitializing, StateAuthenticated},
			{StateConnected, StateAuthenticated},
		} {
			var b stateBox
			b.v.Store(int32(e.from))
			if err := b.moveFrom(e.from, e.to); !errors.Is(err, ErrIllegalTransition) || b.load() != e.from {
				t.Errorf("moveFrom(%s, %s): err %v, state %s", e.from, e.to, err, b.load())
			}
		}
	})
	t.Run("concurrent moveFrom has one winner", func(t *testing.T) {
		for round := 0; round < 50; round++ {
			var b stateBox
			b.v.Store(int32(StateConnected))
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins := 0
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if b.moveFrom(StateConnected, StateAuthenticating) == nil {
						mu.Lock()
						wins++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if wins != 1 || b.load() != StateAuthenticating {
				t.Fatalf("%d goroutines won moveFrom(CONNECTED, AUTHENTICATING); state %s", wins, b.load())
			}
		}
	})
}

type wpTransition struct{ from, to State }

func (x wpTransition) String() string { return x.from.String() + "→" + x.to.String() }

// OnStateChange reports every state of a real connection's life, in order, each along an
// edge of the table, ending in DISCONNECTED before OnDisconnect runs.
func TestStateLifecycleSequence(t *testing.T) {
	const (
		I  = StateInitializing
		C1 = StateConnecting
		C2 = StateConnected
		A1 = StateAuthenticating
		A2 = StateAuthenticated
		D1 = StateDisconnecting
		D2 = StateDisconnected
		E  = StateError
	)
	cases := []struct {
		name     string
		opts     func(t *testing.T) dialOpts
		run      func(t *testing.T, c *client)
		want     []State // the "to" of each transition
		wantCode int
	}{
		{
			name: "authenticate then DISCONNECT",
			run: func(t *testing.T, c *client) {
				c.authenticate(token(t, "42", time.Hour))
				c.send(`{"type":"DISCONNECT"}`)
				c.closed()
			},
			want:     []State{C1, C2, A1, A2, D1, D2},
			wantCode: CloseNormal,
		},
		{
			name: "failed authentication then close frame",
			run: func(t *testing.T, c *client) {
				c.authenticate("bad")
				wpAlive(t, c)
				_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
			},
			want:     []State{C1, C2, A1, C2, D1, D2},
			wantCode: CloseNormal,
		},
		{
			name: "handshake token, re-authentication, DISCONNECT",
			opts: func(t *testing.T) dialOpts {
				return dialOpts{header: http.Header{"Authorization": {"Bearer " + token(t, "42", time.Hour)}}}
			},
			run: func(t *testing.T, c *client) {
				c.authenticate(token(t, "42", 2*time.Hour))
				c.send(`{"type":"DISCONNECT"}`)
				c.closed()
			},
			want:     []State{C1, C2, A1, A2, A1, A2, D1, D2},
			wantCode: CloseNormal,
		},
		{
			name: "connection dropped without a close frame",
			run: func(t *testing.T, c *client) {
				wpAlive(t, c)
				_ = c.ws.CloseNow()
			},
			want:     []State{C1, C2, E, D2},
			wantCode: CloseAbnormal,
		},
		{
			name: "server closes",
			run: func(t *testing.T, c *client) {
				c.authenticate(token(t, "42", time.Hour))
				c.send(`{"type":"KICK_ME"}`)
				c.closed()
			},
			want:     []State{C1, C2, A1, A2, D1, D2},
			wantCode: CloseForbidden,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []wpTransition
			var disc []State // the state as seen from OnDisconnect
			done := make(chan int, 1)
			ts := startServer(t, Config{
				Authenticator: newJWT(t),
				OnStateChange: func(c *Conn, from, to State) {
					mu.Lock()
					got = append(got, wpTransition{from, to})
					mu.Unlock()
				},
				OnDisconnect: func(c *Conn, code int, reason string) {
					mu.Lock()
					disc = append(disc, c.State())
					mu.Unlock()
					done <- code
				},
			})
			ts.m.Handle("KICK_ME", func(ctx context.Context, c *Conn, msg *Message) error {
				c.Close(CloseForbidden, "kicked")
				return nil
			})
			var c *client
			if tc.opts != nil {
				c = ts.dial(tc.opts(t))
			} else {
				c = ts.dial()
			}
			tc.run(t, c)
			select {
			case code := <-done:
				if code != tc.wantCode {
					t.Errorf("OnDisconnect code %d, want %d", code, tc.wantCode)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("OnDisconnect not called")
			}
			mu.Lock()
			defer mu.Unlock()
			var tos []State
			prev := I
			for _, tr := range got {
				if tr.from != prev {
					t.Errorf("transition %s does not start where the last one ended (%s): %v", tr, prev, got)
				}
				if !CanTransition(tr.from, tr.to) {
					t.Errorf("reported transition %s is not in the table", tr)
				}
				prev = tr.to
				tos = append(tos, tr.to)
			}
			if fmt.Sprint(tos) != fmt.Sprint(tc.want) {
				t.Fatalf("states %v, want %v", tos, tc.want)
			}
			if len(disc) != 1 || disc[0] != StateDisconnected {
				t.Fatalf("state in OnDisconnect %v, want DISCONNECTED", disc)
			}
		})
	}
}

// The state (and identity, subscriptions) of a connection can be read from any goroutine
// while the connection changes state; run with -race.
func TestStateConcurrentReads(t *testing.T) {
	conns := make(chan *Conn, 1)
	done := make(chan struct{})
	ts := startServer(t, Config{
		Authenticator:   newJWT(t),
		MaxAuthFailures: -1,
		OnConnect:       func(c *Conn) { conns <- c },
		OnDisconnect:    func(*Conn, int, string) { close(done) },
	})
	c := ts.dial()
	srv := <-conns

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt) // before the server's goroutine check, also when the test fails
	var mu sync.Mutex
	seen := map[State]bool{}
	var bad []State
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s := srv.State()
				_ = s.String()
				_ = srv.UserID()
				_ = srv.Identity()
				_ = srv.Subscriptions()
				_ = ts.m.Stats()
				mu.Lock()
				seen[s] = true
				if s < StateInitializing || s > StateError {
					bad = append(bad, s)
				}
				mu.Unlock()
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		c.authenticate(token(t, "42", time.Hour))
		c.subscribe(fmt.Sprintf("topic.%d", i))
		c.authenticate("bad token")
	}
	c.send(`{"type":"DISCONNECT"}`)
	c.closed()
	<-done
	// Keep reading a little after the end, then stop.
	waitFor(t, "readers to see DISCONNECTED", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen[StateDisconnected]
	})
	halt()
	if len(bad) > 0 {
		t.Fatalf("read impossible states %v", bad)
	}
	if srv.State() != StateDisconnected {
		t.Fatalf("final state %s", srv.State())
	}
	if !seen[StateAuthenticated] {
		t.Errorf("readers never saw AUTHENTICATED (saw %v)", seen)
	}
}

// A refused upgrade ends in DISCONNECTED too, and OnStateChange hears about it ("called
// after every state change of a connection"): an application keeping a gauge of states
// must not count refused handshakes as CONNECTING forever.
func TestStateRefusedUpgrade(t *testing.T) {
	cases := []struct {
		name   string
		do     func(ts *testServer) (int, error)
		status int
	}{
		{"plain HTTP request", func(ts *testServer) (int, error) {
			resp, err := http.Get(ts.srv.URL + "/ws")
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}, http.StatusUpgradeRequired},
		{"foreign origin", func(ts *testServer) (int, error) {
			_, resp, err := ts.tryDial(dialOpts{header: http.Header{"Origin": {"https://evil.example"}}})
			if err == nil {
				return 0, errors.New("upgrade from a foreign origin accepted")
			}
			if resp == nil {
				return 0, err
			}
			return resp.StatusCode, nil
		}, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []wpTransition
			ts := startServer(t, Config{OnStateChange: func(c *Conn, from, to State) {
				mu.Lock()
				got = append(got, wpTransition{from, to})
				mu.Unlock()
			}})
			status, err := tc.do(ts)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.status {
				t.Fatalf("HTTP status %d, want %d", status, tc.status)
			}
			want := fmt.Sprint([]wpTransition{{StateInitializing, StateConnecting}, {StateConnecting, StateDisconnected}})
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				s := fmt.Sprint(got)
				mu.Unlock()
				if s == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("OnStateChange saw %s, want %s", s, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := ts.m.Stats().Connections; n != 0 {
				t.Fatalf("Stats.Connections = %d after a refused upgrade", n)
			}
		})
	}
}
