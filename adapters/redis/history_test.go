package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/internal/testenv"
)

// collector records what a broker delivers to its node.
type collector struct {
	mu   sync.Mutex
	msgs []*switchboard.Message
}

func (c *collector) deliver(p *switchboard.Publication) {
	c.mu.Lock()
	c.msgs = append(c.msgs, p.Message)
	c.mu.Unlock()
}

func (c *collector) snapshot() []*switchboard.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*switchboard.Message(nil), c.msgs...)
}

func (c *collector) wait(t *testing.T, n int) []*switchboard.Message {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%d publications", n), func() bool { return len(c.snapshot()) >= n })
	return c.snapshot()
}

// startBroker starts a broker on its own, without a Manager, and closes it at the end.
func startBroker(t *testing.T, url, prefix string) (*Broker, *collector) {
	t.Helper()
	b := newBroker(t, url, prefix)
	c := &collector{}
	if err := b.Start(c.deliver); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, c
}

func subscribeTopic(t *testing.T, b *Broker, topic string) {
	t.Helper()
	if err := b.SubscribeTopic(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
}

var testRule = switchboard.HistoryRule{Pattern: "*", Size: 100, TTL: time.Minute}

func topicPub(t testing.TB, topic string, n int) *switchboard.Publication {
	m := msg(t, typ, n)
	m.Topic = topic
	return &switchboard.Publication{Kind: switchboard.TargetTopic, Topic: topic, Message: m}
}

func publishH(t *testing.T, b *Broker, topic string, n int, rule switchboard.HistoryRule) switchboard.StreamPosition {
	t.Helper()
	pos, err := b.PublishHistory(context.Background(), topicPub(t, topic, n), rule)
	if err != nil {
		t.Fatalf("PublishHistory #%d: %v", n, err)
	}
	return pos
}

func history(t *testing.T, b *Broker, topic string, since *switchboard.StreamPosition, limit int) switchboard.HistoryResult {
	t.Helper()
	res, err := b.History(context.Background(), topic, switchboard.HistoryQuery{Since: since, Limit: limit})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	return res
}

// payloadN returns the "n" of a test message's payload.
func payloadN(t *testing.T, m *switchboard.Message) int {
	t.Helper()
	f := frame{Payload: m.Payload}
	n, ok := f.field("n").(float64)
	if !ok {
		t.Fatalf("message without n: %s", m.Payload)
	}
	return int(n)
}

// checkPubs checks that pubs are the publications with the given n, at seq n, in epoch.
func checkPubs(t *testing.T, pubs []*switchboard.Message, topic, epoch string, want ...int) {
	t.Helper()
	if len(pubs) != len(want) {
		t.Fatalf("%d publications, want %v", len(pubs), want)
	}
	for i, m := range pubs {
		if n := payloadN(t, m); n != want[i] || m.Seq != uint64(want[i]) || m.Epoch != epoch || m.Topic != topic {
			t.Fatalf("publication %d: n=%d seq=%d epoch=%q topic=%q, want n=seq=%d epoch=%q topic=%q",
				i, n, m.Seq, m.Epoch, m.Topic, want[i], epoch, topic)
		}
	}
}

func pos(seq uint64, epoch string) *switchboard.StreamPosition {
	return &switchboard.StreamPosition{Seq: seq, Epoch: epoch}
}

// TestHistoryPositionsAcrossBrokers publishes concurrently from two brokers: Redis hands out
// every seq once, consecutively, in one epoch.
func TestHistoryPositionsAcrossBrokers(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	prefix := uniquePrefix(t)
	a, _ := startBroker(t, url, prefix)
	b, _ := startBroker(t, url, prefix)
	const writers, each = 4, 50 // writers per broker
	var mu sync.Mutex
	seen := map[uint64]int{}
	epochs := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := 0; w < 2*writers; w++ {
		br := a
		if w%2 == 1 {
			br = b
		}
		wg.Add(1)
		go func(w int, br *Broker) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p, err := br.PublishHistory(context.Background(), topicPub(t, "count", w*1000+i), testRule)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[p.Seq]++
				epochs[p.Epoch] = true
				mu.Unlock()
			}
		}(w, br)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = 2 * writers * each
	if len(epochs) != 1 {
		t.Fatalf("epochs %v, want one", epochs)
	}
	for s := uint64(1); s <= total; s++ {
		if seen[s] != 1 {
			t.Fatalf("seq %d handed out %d times", s, seen[s])
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct seqs, want %d", len(seen), total)
	}
	res := history(t, a, "count", nil, -1)
	if res.Position.Seq != total || !epochs[res.Position.Epoch] || !res.Complete {
		t.Fatalf("History position %+v complete=%v, want seq %d", res.Position, res.Complete, total)
	}
}

// TestHistoryOrderAcrossNodes has two nodes publish concurrently to one topic: a third node
// receives every publication once, in strictly increasing seq, each with the position its
// publisher was told.
func TestHistoryOrderAcrossNodes(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	prefix := uniquePrefix(t)
	a, _ := startBroker(t, url, prefix)
	b, got := startBroker(t, url, prefix)
	c, _ := startBroker(t, url, prefix)
	subscribeTopic(t, b, "ord")
	const writers, each = 3, 60 // writers per publishing node
	var mu sync.Mutex
	told := map[int]switchboard.StreamPosition{}
	var wg sync.WaitGroup
	for w := 0; w < 2*writers; w++ {
		br := a
		if w%2 == 1 {
			br = c
		}
		wg.Add(1)
		go func(w int, br *Broker) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := w*1000 + i
				p, err := br.PublishHistory(context.Background(), topicPub(t, "ord", n), testRule)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				told[n] = p
				mu.Unlock()
			}
		}(w, br)
	}
	wg.Wait()
	const total = 2 * writers * each
	msgs := got.wait(t, total)
	if len(msgs) != total {
		t.Fatalf("B received %d, want %d", len(msgs), total)
	}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("publication %d on B has seq %d, want %d (out of order or duplicated)", i, m.Seq, i+1)
		}
		if p := told[payloadN(t, m)]; p.Seq != m.Seq || p.Epoch != m.Epoch {
			t.Fatalf("publication n=%d arrived as %d/%s, its publisher was told %+v", payloadN(t, m), m.Seq, m.Epoch, p)
		}
	}
}

func TestHistoryRead(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	prefix := uniquePrefix(t)
	a, _ := startBroker(t, url, prefix)
	b, _ := startBroker(t, url, prefix) // reads from another node
	var e string
	for i := 1; i <= 5; i++ {
		p := publishH(t, a, "news", i, testRule)
		if p.Seq != uint64(i) || (e != "" && p.Epoch != e) {
			t.Fatalf("publication %d got position %+v", i, p)
		}
		e = p.Epoch
	}
	res := history(t, b, "news", nil, -1)
	if res.Position != *pos(5, e) || !res.Complete || len(res.Publications) != 0 {
		t.Fatalf("History without Since: %+v", res)
	}
	res = history(t, b, "news", pos(2, e), -1)
	if !res.Complete || res.Position != *pos(5, e) {
		t.Fatalf("since 2: complete=%v position %+v", res.Complete, res.Position)
	}
	checkPubs(t, res.Publications, "news", e, 3, 4, 5)

	res = history(t, b, "news", pos(5, e), 10)
	if !res.Complete || len(res.Publications) != 0 {
		t.Fatalf("since the latest: %+v", res)
	}
	res = history(t, b, "news", pos(2, e), 3)
	if !res.Complete {
		t.Fatal("since 2 with limit 3: not complete")
	}
	checkPubs(t, res.Publications, "news", e, 3, 4, 5)

	res = history(t, b, "news", pos(1, e), 3) // 4 missed, more than the limit
	if res.Complete {
		t.Fatal("since 1 with limit 3: complete")
	}
	checkPubs(t, res.Publications, "news", e, 2, 3, 4)

	// Limit 0 reads no publications: complete only when nothing was missed.
	if res := history(t, b, "news", pos(2, e), 0); res.Complete || len(res.Publications) != 0 || res.Position != *pos(5, e) {
		t.Fatalf("since 2 with limit 0: %+v", res)
	}
	if res := history(t, b, "news", pos(5, e), 0); !res.Complete || len(res.Publications) != 0 {
		t.Fatalf("since 5 with limit 0: %+v", res)
	}

	res = history(t, b, "news", pos(2, "another"+e), -1)
	if res.Complete || len(res.Publications) != 0 || res.Position != *pos(5, e) {
		t.Fatalf("other epoch: %+v", res)
	}
	res = history(t, b, "news", pos(9, e), -1) // a position the stream never had
	if res.Complete || len(res.Publications) != 0 {
		t.Fatalf("since 9: %+v", res)
	}
}

// TestHistoryFreshTopic reads a topic without history: History starts its epoch, and the
// first publication continues it, so a client at the position it was given recovers.
func TestHistoryFreshTopic(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	a, _ := startBroker(t, url, uniquePrefix(t))
	res := history(t, a, "fresh", nil, -1)
	if res.Position.Seq != 0 || res.Position.Epoch == "" || !res.Complete {
		t.Fatalf("fresh topic: %+v", res)
	}
	start := res.Position
	raw := rawClient(t, url)
	if ttl, err := raw.PTTL(context.Background(), a.HistoryMeta("fresh")).Result(); err != nil || ttl <= time.Hour || ttl > DefaultEpochTTL {
		t.Fatalf("meta PTTL %v (%v) after a read without TTL, want Options.EpochTTL", ttl, err)
	}
	// A read that names the rule's TTL starts the epoch for that long.
	r, err := a.History(context.Background(), "fresh2", switchboard.HistoryQuery{TTL: 30 * time.Second})
	if err != nil || r.Position.Seq != 0 || r.Position.Epoch == "" {
		t.Fatalf("fresh2: %+v %v", r, err)
	}
	if ttl, err := raw.PTTL(context.Background(), a.HistoryMeta("fresh2")).Result(); err != nil || ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("meta PTTL %v (%v) after a read with TTL 30s", ttl, err)
	}
	if again := history(t, a, "fresh", nil, -1); again.Position != start {
		t.Fatalf("second read %+v, first %+v", again.Position, start)
	}
	if p := publishH(t, a, "fresh", 1, testRule); p != *pos(1, start.Epoch) {
		t.Fatalf("first publication at %+v, want seq 1 in %s", p, start.Epoch)
	}
	res = history(t, a, "fresh", &start, -1)
	if !res.Complete {
		t.Fatal("not complete")
	}
	checkPubs(t, res.Publications, "fresh", start.Epoch, 1)
	ttl, err := raw.PTTL(context.Background(), a.HistoryMeta("fresh")).Result()
	if err != nil || ttl <= 0 || ttl > testRule.TTL {
		t.Fatalf("meta PTTL %v (%v), want the rule's TTL after a publication", ttl, err)
	}
}

func TestHistoryTrimmedBySize(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	a, _ := startBroker(t, url, uniquePrefix(t))
	rule := switchboard.HistoryRule{Pattern: "*", Size: 3, TTL: time.Minute}
	var e string
	for i := 1; i <= 5; i++ {
		e = publishH(t, a, "small", i, rule).Epoch
	}
	if n, err := rawClient(t, url).XLen(context.Background(), a.HistoryStream("small")).Result(); err != nil || n != 3 {
		t.Fatalf("XLEN = %d (%v), want 3", n, err)
	}
	res := history(t, a, "small", pos(1, e), -1)
	if res.Complete {
		t.Fatal("complete although publication 2 was trimmed")
	}
	checkPubs(t, res.Publications, "small", e, 3, 4, 5)
	res = history(t, a, "small", pos(2, e), -1)
	if !res.Complete {
		t.Fatal("since 2: not complete, though 3..5 are kept")
	}
	checkPubs(t, res.Publications, "small", e, 3, 4, 5)
}

// redisNowMs is Redis's clock, which stamps history entries.
func redisNowMs(t *testing.T, c *goredis.Client) int64 {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMilli()
}

// TestHistoryEntryTTL: an entry older than the rule's TTL counts as gone even while its
// key lives on (here kept alive by the test, as later publications would).
func TestHistoryEntryTTL(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	a, _ := startBroker(t, url, uniquePrefix(t))
	raw := rawClient(t, url)
	ctx := context.Background()
	rule := switchboard.HistoryRule{Pattern: "*", Size: 10, TTL: time.Second}
	publishH(t, a, "brief", 1, rule)
	e := publishH(t, a, "brief", 2, rule).Epoch
	for _, k := range []string{a.HistoryStream("brief"), a.HistoryMeta("brief")} {
		if err := raw.Persist(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := raw.XRange(ctx, a.HistoryStream("brief"), "2-0", "2-0").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("entry 2: %v (%v)", entries, err)
	}
	stamped, _ := strconv.ParseInt(entries[0].Values["t"].(string), 10, 64)
	waitFor(t, 10*time.Second, "entry 2 to be older than the TTL", func() bool {
		return redisNowMs(t, raw) > stamped+rule.TTL.Milliseconds()
	})
	res := history(t, a, "brief", pos(0, e), -1)
	if res.Complete || len(res.Publications) != 0 || res.Position != *pos(2, e) {
		t.Fatalf("after the TTL: %+v, want incomplete, nothing, position 2", res)
	}
	// A client that has everything loses nothing when entries expire.
	if res := history(t, a, "brief", pos(2, e), -1); !res.Complete {
		t.Fatal("since the latest: not complete")
	}
}

// TestHistoryExpires lets a topic's keys expire: its next read or publication starts a new
// epoch, and a client of the old one cannot recover.
func TestHistoryExpires(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	a, _ := startBroker(t, url, uniquePrefix(t))
	raw := rawClient(t, url)
	rule := switchboard.HistoryRule{Pattern: "*", Size: 10, TTL: time.Second}
	old := publishH(t, a, "gone", 1, rule)
	waitFor(t, 10*time.Second, "the history to expire", func() bool {
		n, err := raw.Exists(context.Background(), a.HistoryMeta("gone"), a.HistoryStream("gone")).Result()
		return err == nil && n == 0
	})
	res := history(t, a, "gone", &old, -1)
	if res.Complete || len(res.Publications) != 0 || res.Position.Seq != 0 || res.Position.Epoch == old.Epoch {
		t.Fatalf("after expiry: %+v, want incomplete at seq 0 of a new epoch", res)
	}
	if p := publishH(t, a, "gone", 2, rule); p != *pos(1, res.Position.Epoch) {
		t.Fatalf("next publication at %+v, want seq 1 of %s", p, res.Position.Epoch)
	}
}

// TestHistoryEpochChange deletes a topic's meta hash (as an operator or an eviction might):
// the next publication starts a new epoch at seq 1 with an empty stream.
func TestHistoryEpochChange(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	a, _ := startBroker(t, url, uniquePrefix(t))
	b, _ := startBroker(t, url, a.opts.Prefix)
	raw := rawClient(t, url)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		publishH(t, a, "epoch", i, testRule)
	}
	old := history(t, b, "epoch", nil, -1).Position
	if err := raw.Del(ctx, a.HistoryMeta("epoch")).Err(); err != nil {
		t.Fatal(err)
	}
	p := publishH(t, a, "epoch", 4, testRule)
	if p.Seq != 1 || p.Epoch == old.Epoch {
		t.Fatalf("after the meta was deleted: %+v, old %+v", p, old)
	}
	if n, err := raw.XLen(ctx, a.HistoryStream("epoch")).Result(); err != nil || n != 1 {
		t.Fatalf("XLEN = %d (%v), want 1: the old epoch's entries must go", n, err)
	}
	res := history(t, b, "epoch", &old, -1)
	if res.Complete || len(res.Publications) != 0 || res.Position != p {
		t.Fatalf("old epoch: %+v", res)
	}
	res = history(t, b, "epoch", pos(0, p.Epoch), -1)
	if !res.Complete {
		t.Fatal("new epoch from 0: not complete")
	}
	if len(res.Publications) != 1 || payloadN(t, res.Publications[0]) != 4 || res.Publications[0].Seq != 1 {
		t.Fatalf("new epoch from 0: %d publications", len(res.Publications))
	}
}

// TestHistoryBadData feeds a node malformed channel messages and a corrupt history entry:
// they are dropped (and the entry counts as a gap), nothing crashes, and what follows flows.
func TestHistoryBadData(t *testing.T) {
	url := testenv.RedisURL(t)
	leakCheck(t)
	a, got := startBroker(t, url, uniquePrefix(t))
	subscribeTopic(t, a, "bad")
	raw := rawClient(t, url)
	ctx := context.Background()
	valid, err := switchboard.EncodePublication(topicPub(t, "bad", 0))
	if err != nil {
		t.Fatal(err)
	}
	everyone, err := switchboard.EncodePublication(&switchboard.Publication{Kind: switchboard.TargetAll, Message: msg(t, typ, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, junk := range []string{"h", "h1", "h1:e", "hx:e:" + string(valid), "h0:e:" + string(valid),
		"h1::" + string(valid), "h1:e:{not json", "h1:e:" + string(everyone), "h18446744073709551616:e:" + string(valid)} {
		if err := raw.Publish(ctx, a.TopicChannel("bad"), junk).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p1 := publishH(t, a, "bad", 1, testRule)
	if msgs := got.wait(t, 1); len(msgs) != 1 || msgs[0].Seq != 1 || payloadN(t, msgs[0]) != 1 {
		t.Fatalf("received %d publications after the junk, want just #1", len(msgs))
	}
	// A corrupt entry at seq 2, then a good one at 3.
	if err := raw.HIncrBy(ctx, a.HistoryMeta("bad"), "s", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.XAdd(ctx, &goredis.XAddArgs{Stream: a.HistoryStream("bad"), ID: "2-0",
		Values: []any{"t", redisNowMs(t, raw), "p", "{garbage"}}).Err(); err != nil {
		t.Fatal(err)
	}
	publishH(t, a, "bad", 3, testRule)
	res := history(t, a, "bad", &p1, -1)
	if res.Complete {
		t.Fatal("complete over a corrupt entry")
	}
	checkPubs(t, res.Publications, "bad", p1.Epoch, 3)
	if res := history(t, a, "bad", pos(2, p1.Epoch), -1); !res.Complete {
		t.Fatal("since 2: not complete")
	}
	if _, err := a.PublishHistory(ctx, &switchboard.Publication{Kind: switchboard.TargetAll, Message: msg(t, typ, 9)}, testRule); err == nil {
		t.Fatal("PublishHistory of a publication for everyone succeeded")
	}
}

// TestHistoryRedisDown: history publishes and reads fail while Redis is down, and work again
// once it is back (a new Redis knows neither the script nor the history: a new epoch).
func TestHistoryRedisDown(t *testing.T) {
	leakCheck(t)
	r := startPrivateRedis(t)
	a, got := startBroker(t, r.url(), uniquePrefix(t))
	subscribeTopic(t, a, "live")
	before := publishH(t, a, "live", 1, testRule)
	got.wait(t, 1)
	r.stop()
	ctx := context.Background()
	if _, err := a.PublishHistory(ctx, topicPub(t, "live", 2), testRule); err == nil {
		t.Fatal("PublishHistory succeeded with Redis down")
	}
	if _, err := a.History(ctx, "live", switchboard.HistoryQuery{Since: &before}); err == nil {
		t.Fatal("History succeeded with Redis down")
	}
	r.start()
	// Publish until a publication reaches the node: the publish must succeed and the node
	// must have resubscribed to the topic's channel.
	var first *switchboard.StreamPosition
	for n := 3; ; n++ {
		p, err := a.PublishHistory(ctx, topicPub(t, "live", n), testRule)
		if err == nil && first == nil {
			first = &p
		}
		if err == nil && len(got.snapshot()) > 1 {
			break
		}
		if n > 300 {
			t.Fatalf("nothing flows after Redis came back (last error %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if first.Seq != 1 || first.Epoch == before.Epoch {
		t.Fatalf("first publication after the restart at %+v, before %+v", *first, before)
	}
	for i, m := range got.snapshot()[1:] {
		if m.Epoch != first.Epoch || (i > 0 && m.Seq <= got.snapshot()[i].Seq) {
			t.Fatalf("after the restart: publication at %d/%s", m.Seq, m.Epoch)
		}
	}
}
