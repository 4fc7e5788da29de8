package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHistoryRandomRecovery: clients subscribe, disconnect and recover at random moments
// while publishers run; across its reconnects, each client gets every publication of every
// topic from its first subscription on, exactly once and in order. The history window is
// larger than everything published, so every recovery must succeed. Slow-consumer
// disconnects (1013) may happen on a busy machine and are recovered like any other.
//
// The run is reproducible from its seed (logged; set HISTORY_SEED to replay one), up to the
// scheduling of goroutines.
func TestHistoryRandomRecovery(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("HISTORY_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("HISTORY_SEED: %v", err)
		}
	}
	t.Logf("seed %d (HISTORY_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	const (
		clients    = 10
		publishers = 3
		perPub     = 300 // publications per publisher
		minRounds  = 3   // connections per client at least, before the final one
	)
	topics := []string{"room:a", "room:b", "room:c"}
	// A small send queue makes slow-consumer closes likely: recovery must cover them too.
	queue := []int{4, 32, 256}[rng.Intn(3)]
	t.Logf("SendQueueSize %d", queue)
	ts := startServer(t, Config{
		History:       []HistoryRule{{Pattern: "room:*", Size: 10000, TTL: time.Hour}},
		RecoverLimit:  -1,
		MessageRate:   -1,
		SendQueueSize: queue,
	})

	pubDone := make(chan struct{})
	var pubWG sync.WaitGroup
	for p := 0; p < publishers; p++ {
		prng := rand.New(rand.NewSource(rng.Int63()))
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := 0; i < perPub; i++ {
				topic := topics[prng.Intn(len(topics))]
				msg, err := NewData("tick", map[string]int{"i": i})
				if err == nil {
					err = ts.m.Publish(context.Background(), topic, msg)
				}
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				if prng.Intn(4) == 0 {
					time.Sleep(time.Duration(prng.Intn(2000)) * time.Microsecond)
				}
			}
		}()
	}
	go func() { pubWG.Wait(); close(pubDone) }()

	rcs := make([]*randClient, clients)
	var wg sync.WaitGroup
	for i := range rcs {
		rcs[i] = &randClient{t: t, ts: ts, name: fmt.Sprintf("client %d", i), rng: rand.New(rand.NewSource(rng.Int63())),
			topics: topics, last: map[string]histPos{}, quiet: pubDone}
		wg.Add(1)
		go func(rc *randClient) {
			defer wg.Done()
			for round := 0; ; round++ {
				select {
				case <-pubDone:
					if round >= minRounds {
						return
					}
				default:
				}
				if err := rc.round(); err != nil {
					t.Errorf("%s, round %d: %v", rc.name, round, err)
					return
				}
			}
		}(rcs[i])
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	final := map[string]histPos{}
	for _, topic := range topics {
		r, err := ts.m.History(context.Background(), topic, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		final[topic] = histPos{r.Position.Seq, r.Position.Epoch}
	}
	total := uint64(0)
	for _, p := range final {
		total += p.Seq
	}
	if total != publishers*perPub {
		t.Fatalf("streams hold %d publications, %d were published", total, publishers*perPub)
	}
	var reconnects, slow, recovered int
	for _, rc := range rcs {
		if err := rc.catchUp(final); err != nil {
			t.Errorf("%s, final round: %v", rc.name, err)
			continue
		}
		for _, topic := range topics {
			got := rc.received[topic]
			want := final[topic].Seq - rc.first[topic].Seq
			if got != want {
				t.Errorf("%s, %s: received %d publications after seq %d, want %d", rc.name, topic, got, rc.first[topic].Seq, want)
			}
		}
		reconnects += rc.rounds
		slow += rc.slow
		recovered += rc.recovered
	}
	t.Logf("%d connections, %d recoveries, %d slow-consumer closes, final positions %v", reconnects, recovered, slow, final)
}

// randClient is one client of TestHistoryRandomRecovery, with what it has received so far.
type randClient struct {
	t      *testing.T
	ts     *testServer
	name   string
	rng    *rand.Rand
	topics []string
	quiet  <-chan struct{} // closed once the publishers are done

	last     map[string]histPos // per topic, the position of the last publication received
	first    map[string]histPos // per topic, the position at the first subscription
	received map[string]uint64

	rounds, slow, recovered int
}

var errRoundOver = errors.New("round over")

// round connects, subscribes to the topics (recovering those it has a position for), in one
// or two SUBSCRIBEs, reads a random number of frames, and disconnects abruptly or not.
func (rc *randClient) round() error {
	ws, err := rc.dial()
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	rc.rounds++
	order := rc.rng.Perm(len(rc.topics))
	split := 1 + rc.rng.Intn(len(order))
	for _, part := range [][]int{order[:split], order[split:]} {
		if len(part) > 0 {
			if err := rc.subscribe(ws, part); err != nil {
				return err
			}
		}
	}
	pending := 1 // replies still to come
	if split < len(order) {
		pending = 2
	}
	budget := rc.rng.Intn(80)
	for n := 0; n < budget+pending; n++ {
		wait := 10 * time.Second
		select {
		case <-rc.quiet:
			if pending == 0 {
				wait = 100 * time.Millisecond // nothing more is coming
			}
		default:
		}
		err := rc.readOne(ws, wait, &pending)
		if errors.Is(err, errRoundOver) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if pending > 0 {
		return nil // left before all its replies came: a fine moment to vanish too
	}
	if rc.rng.Intn(2) == 0 {
		_ = ws.Close(websocket.StatusNormalClosure, "")
	}
	return nil
}

// catchUp connects once more and reads until it has everything up to final.
func (rc *randClient) catchUp(final map[string]histPos) error {
	ws, err := rc.dial()
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	all := make([]int, len(rc.topics))
	for i := range all {
		all[i] = i
	}
	if err := rc.subscribe(ws, all); err != nil {
		return err
	}
	pending := 1
	done := func() bool {
		for topic, p := range final {
			if rc.last[topic] != p {
				return false
			}
		}
		return pending == 0
	}
	for !done() {
		if err := rc.readOne(ws, 10*time.Second, &pending); err != nil {
			return fmt.Errorf("%w (have %v, want %v)", err, rc.last, final)
		}
	}
	return nil
}

func (rc *randClient) dial() (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, rc.ts.url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(-1)
	return ws, nil
}

// subscribe sends SUBSCRIBE for the topics at idx, with the positions it has.
func (rc *randClient) subscribe(ws *websocket.Conn, idx []int) error {
	var topics []string
	recover := map[string]histPos{}
	for _, i := range idx {
		topic := rc.topics[i]
		topics = append(topics, topic)
		if p, ok := rc.last[topic]; ok {
			recover[topic] = p
		}
	}
	b, _ := json.Marshal(map[string]any{"type": TypeSubscribe, "id": "s",
		"payload": map[string]any{"subscriptions": topics, "recover": recover}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, b)
}

// readOne reads and checks one frame. It returns errRoundOver when the server closed the
// connection for being slow, and an error for anything that breaks the guarantees.
func (rc *randClient) readOne(ws *websocket.Conn, wait time.Duration, pending *int) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		if websocket.CloseStatus(err) == websocket.StatusTryAgainLater {
			rc.slow++
			return errRoundOver
		}
		if ctx.Err() != nil && *pending == 0 {
			return errRoundOver // nothing more is being published: leave
		}
		return fmt.Errorf("read: %w", err)
	}
	var f struct {
		Type    string          `json:"type"`
		Topic   string          `json:"topic"`
		Seq     uint64          `json:"seq"`
		Epoch   string          `json:"epoch"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("frame %s: %w", b, err)
	}
	switch f.Type {
	case TypeSubscribeSuccess:
		*pending--
		var r subReply
		if err := json.Unmarshal(f.Payload, &r); err != nil {
			return fmt.Errorf("SUBSCRIBE_SUCCESS %s: %w", b, err)
		}
		return rc.subscribed(r, b)
	case TypeData:
		last, ok := rc.last[f.Topic]
		if !ok {
			return fmt.Errorf("publication before SUBSCRIBE_SUCCESS: %s", b)
		}
		if f.Epoch != last.Epoch || f.Seq != last.Seq+1 {
			return fmt.Errorf("%s: got seq %d epoch %s after seq %d epoch %s (gap or duplicate)", f.Topic, f.Seq, f.Epoch, last.Seq, last.Epoch)
		}
		rc.last[f.Topic] = histPos{f.Seq, f.Epoch}
		rc.received[f.Topic]++
		return nil
	case TypePing:
		return nil
	}
	return fmt.Errorf("unexpected frame %s", b)
}

// subscribed checks a SUBSCRIBE_SUCCESS: every recovery succeeds, and a fresh topic starts
// at its position.
func (rc *randClient) subscribed(r subReply, raw []byte) error {
	if rc.first == nil {
		rc.first, rc.received = map[string]histPos{}, map[string]uint64{}
	}
	for _, topic := range r.Subscriptions {
		pos, ok := r.Positions[topic]
		if !ok || pos.Epoch == "" {
			return fmt.Errorf("no position for %s: %s", topic, raw)
		}
		last, known := rc.last[topic]
		if !known {
			rc.last[topic], rc.first[topic] = pos, pos
			continue
		}
		if !r.Recovered[topic] {
			return fmt.Errorf("%s not recovered from %+v: %s", topic, last, raw)
		}
		rc.recovered++
		if pos.Epoch != last.Epoch || pos.Seq < last.Seq {
			return fmt.Errorf("%s: position %+v behind the client's %+v", topic, pos, last)
		}
	}
	return nil
}
