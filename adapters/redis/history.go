package redis

// Topic history on Redis: Broker implements switchboard.HistoryBroker.
//
// A topic with history has two keys:
//
//	<prefix>:h:<topic>   a stream of its latest publications; entry ID "<seq>-0", fields
//	                     "t" (Redis time of the publish, in ms) and "p" (the encoded publication)
//	<prefix>:hm:<topic>  a hash: "s" the last seq handed out, "e" the epoch, "ttl" the
//	                     rule's TTL in ms (for reads, which are not given the rule)
//
// Redis assigns the positions: one Lua script increments the seq, appends to the stream and
// PUBLISHes, so no two nodes hand out the same seq and every node receives a topic's
// publications in seq order (a script runs alone, and Pub/Sub keeps a channel's order).
// A missing meta hash (a new topic, or one whose history expired or was deleted) starts a
// new epoch and an empty stream.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
)

// historyMark starts a topic channel message that carries a history position:
// "h<seq>:<epoch>:<encoded publication>". A plain encoded publication starts with '{'.
const historyMark = "h"

// publishHistoryScript appends a publication to its topic's history and publishes it.
//
// KEYS: stream, meta. ARGV: channel, encoded publication, size, TTL in ms (0: none), the
// epoch to start when the meta is missing. Returns {seq, epoch}.
var publishHistoryScript = goredis.NewScript(`
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
local seq = string.format('%d', redis.call('HINCRBY', KEYS[2], 's', 1))
local now = redis.call('TIME')
local ms = string.format('%d', now[1] * 1000 + math.floor(now[2] / 1000))
redis.call('HSET', KEYS[2], 'ttl', ARGV[4])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], seq .. '-0', 't', ms, 'p', ARGV[2])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], 'h' .. seq .. ':' .. epoch .. ':' .. ARGV[2])
return {seq, epoch}
`)

// readHistoryScript reads a topic's position and, when asked, its entries from a given seq.
// A missing meta starts a new epoch (at seq 0), so that every position handed to a client
// names a real epoch, and a publication made later continues it.
//
// KEYS: stream, meta. ARGV: the epoch to start when the meta is missing, how long such a
// meta lives (ms), the epoch the caller knows, the first seq wanted (0: none), the most
// entries wanted (0: no cap). Returns {seq, epoch, ttl ms, now s, now µs, entries}; the
// entries are read only when the caller's epoch is the stream's.
var readHistoryScript = goredis.NewScript(`
local m = redis.call('HMGET', KEYS[2], 's', 'e', 'ttl')
local seq, epoch, ttl = m[1], m[2], m[3]
if not epoch then
  seq, epoch, ttl = '0', ARGV[1], '0'
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 's', 0, 'e', epoch)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local now = redis.call('TIME')
local entries = {}
if epoch == ARGV[3] and ARGV[4] ~= '0' then
  if ARGV[5] ~= '0' then
    entries = redis.call('XRANGE', KEYS[1], ARGV[4] .. '-0', '+', 'COUNT', ARGV[5])
  else
    entries = redis.call('XRANGE', KEYS[1], ARGV[4] .. '-0', '+')
  end
end
return {seq, epoch, ttl or '0', now[1], now[2], entries}
`)

// DefaultEpochTTL is the default of Options.EpochTTL.
const DefaultEpochTTL = 24 * time.Hour

var _ switchboard.HistoryBroker = (*Broker)(nil)

// HistoryStream returns the Redis stream that holds the history of topic.
func (b *Broker) HistoryStream(topic string) string { return b.opts.Prefix + ":h:" + topic }

// HistoryMeta returns the Redis hash that holds the position and epoch of topic's history.
func (b *Broker) HistoryMeta(topic string) string { return b.opts.Prefix + ":hm:" + topic }

// histReq is the history part of a publish request: the script's keys and arguments, and,
// once the publisher has run it, the position Redis gave the publication.
type histReq struct {
	keys []string
	args []any
	pos  switchboard.StreamPosition
}

// queue adds r's command to pipe: a PUBLISH, or the history script for a history publish.
func (r *pubReq) queue(ctx context.Context, pipe goredis.Pipeliner) goredis.Cmder {
	if r.hist == nil {
		return pipe.Publish(ctx, r.channel, r.data)
	}
	return publishHistoryScript.EvalSha(ctx, pipe, r.hist.keys, r.hist.args...)
}

// finish reports cmd's outcome to r's waiter, with the position for a history publish.
func (r *pubReq) finish(cmd goredis.Cmder) {
	err := cmd.Err()
	if err == nil && r.hist != nil {
		r.hist.pos, err = parsePosition(cmd.(*goredis.Cmd).Val())
	}
	r.done <- err
}

// rerunUnloaded runs again, in one pipeline, the history publishes that failed because Redis
// did not know the script (the first ones after a start or a Redis restart), after loading
// it. It returns the pipeline's error, or nil when there was nothing to rerun.
func (b *Broker) rerunUnloaded(batch []*pubReq, cmds []goredis.Cmder) error {
	var again []int
	for i, c := range cmds {
		if batch[i].hist != nil && goredis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return nil
	}
	if err := publishHistoryScript.Load(b.ctx, b.client).Err(); err != nil {
		return err
	}
	pipe := b.client.Pipeline()
	for _, i := range again {
		cmds[i] = batch[i].queue(b.ctx, pipe)
	}
	_, err := pipe.Exec(b.ctx)
	return err
}

// PublishHistory implements switchboard.HistoryBroker: Redis appends p to its topic's
// history under the next seq and publishes it, in one script. It goes through the same
// pipelines as Publish, and returns an error when Redis cannot be reached.
func (b *Broker) PublishHistory(ctx context.Context, p *switchboard.Publication, rule switchboard.HistoryRule) (switchboard.StreamPosition, error) {
	if b.closed.Load() || !b.started.Load() {
		return switchboard.StreamPosition{}, ErrClosed
	}
	if p == nil || p.Kind != switchboard.TargetTopic || p.Message == nil {
		return switchboard.StreamPosition{}, fmt.Errorf("%w: history needs a topic publication", switchboard.ErrBadMessage)
	}
	// The position is Redis's to give: whatever p carries is dropped.
	msg := *p.Message
	msg.Seq, msg.Epoch = 0, ""
	stored := *p
	stored.Message = &msg
	data, err := switchboard.EncodePublication(&stored)
	if err != nil {
		return switchboard.StreamPosition{}, err
	}
	h := &histReq{
		keys: []string{b.HistoryStream(p.Topic), b.HistoryMeta(p.Topic)},
		args: []any{b.TopicChannel(p.Topic), data, max(rule.Size, 0), max(rule.TTL.Milliseconds(), 0), newEpoch()},
	}
	r := &pubReq{channel: b.TopicChannel(p.Topic), data: data, hist: h, done: make(chan error, 1)}
	if err := b.send(ctx, r); err != nil {
		return switchboard.StreamPosition{}, err
	}
	return h.pos, nil
}

// History implements switchboard.HistoryBroker. Publications older than the TTL of the
// rule they were published under count as gone, like those trimmed by its Size; so does an
// entry that cannot be decoded. When the result is not complete, Publications holds what
// is left after Since in the same epoch (none when the epoch changed), up to the limit. A
// Limit of 0 reads no publications, a negative one all there are.
func (b *Broker) History(ctx context.Context, topic string, q switchboard.HistoryQuery) (switchboard.HistoryResult, error) {
	if b.closed.Load() {
		return switchboard.HistoryResult{}, ErrClosed
	}
	var from uint64 // first seq wanted; 0 reads no entries
	sinceEpoch := ""
	if q.Since != nil && q.Since.Seq < math.MaxUint64 && q.Limit != 0 {
		from, sinceEpoch = q.Since.Seq+1, q.Since.Epoch
	}
	limit := max(q.Limit, 0) // the script's 0 is no cap, for a negative Limit
	startTTL := q.TTL        // how long an epoch this read starts lives without publications
	if startTTL <= 0 {
		startTTL = b.opts.EpochTTL
	}
	v, err := readHistoryScript.Run(ctx, b.client,
		[]string{b.HistoryStream(topic), b.HistoryMeta(topic)},
		newEpoch(), max(startTTL.Milliseconds(), 1), sinceEpoch, from, limit).Slice()
	if err != nil {
		return switchboard.HistoryResult{}, fmt.Errorf("switchboard/redis: history of %s: %w", topic, err)
	}
	st, err := parseHistoryReply(v)
	if err != nil {
		return switchboard.HistoryResult{}, fmt.Errorf("switchboard/redis: history of %s: %w", topic, err)
	}
	res := switchboard.HistoryResult{Position: st.pos}
	if q.Since == nil {
		res.Complete = true
		return res, nil
	}
	since := *q.Since
	if since.Epoch != st.pos.Epoch || since.Seq > st.pos.Seq {
		return res, nil
	}
	want := since.Seq + 1
	gap := false
	for _, e := range st.entries {
		m := b.decodeEntry(topic, st, e)
		if m == nil || m.Seq != want {
			gap = true
		}
		if m != nil {
			res.Publications = append(res.Publications, m)
			want = m.Seq + 1
		}
	}
	missed := st.pos.Seq - since.Seq
	res.Complete = !gap && uint64(len(res.Publications)) == missed
	return res, nil
}

// historyState is the decoded reply of readHistoryScript.
type historyState struct {
	pos     switchboard.StreamPosition
	ttlMs   int64
	nowMs   int64
	entries []goredis.XMessage
}

func parseHistoryReply(v []any) (historyState, error) {
	var st historyState
	if len(v) != 6 {
		return st, fmt.Errorf("history reply of %d elements", len(v))
	}
	seq, err := replyUint(v[0])
	if err != nil {
		return st, err
	}
	epoch, _ := v[1].(string)
	ttl, err1 := replyUint(v[2])
	secs, err2 := replyUint(v[3])
	micros, err3 := replyUint(v[4])
	if err := errors.Join(err1, err2, err3); err != nil {
		return st, err
	}
	st.pos = switchboard.StreamPosition{Seq: seq, Epoch: epoch}
	st.ttlMs, st.nowMs = int64(ttl), int64(secs)*1000+int64(micros)/1000
	raw, _ := v[5].([]any)
	for _, r := range raw {
		if e, ok := parseEntry(r); ok {
			st.entries = append(st.entries, e)
		}
	}
	return st, nil
}

// parseEntry reads one XRANGE entry, [id, [field, value, …]]; a malformed one is dropped
// (and so counts as a gap).
func parseEntry(r any) (goredis.XMessage, bool) {
	pair, ok := r.([]any)
	if !ok || len(pair) != 2 {
		return goredis.XMessage{}, false
	}
	id, _ := pair[0].(string)
	kv, _ := pair[1].([]any)
	values := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			values[k] = kv[i+1]
		}
	}
	return goredis.XMessage{ID: id, Values: values}, id != ""
}

// decodeEntry returns the message of a stream entry with its topic and position set, or nil
// when the entry has expired or cannot be decoded.
func (b *Broker) decodeEntry(topic string, st historyState, e goredis.XMessage) *switchboard.Message {
	seqText, _, _ := strings.Cut(e.ID, "-")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		b.opts.Logger.Warn("switchboard/redis: history entry with a bad ID", "topic", topic, "id", e.ID)
		return nil
	}
	t, err := replyUint(e.Values["t"])
	if err != nil {
		b.opts.Logger.Warn("switchboard/redis: history entry without a time", "topic", topic, "id", e.ID)
		return nil
	}
	if st.ttlMs > 0 && int64(t) <= st.nowMs-st.ttlMs {
		return nil // expired; the key outlives it when later publications renewed its TTL
	}
	data, _ := e.Values["p"].(string)
	p, err := switchboard.DecodePublication([]byte(data))
	if err != nil {
		b.opts.Logger.Warn("switchboard/redis: undecodable history entry", "topic", topic, "id", e.ID, "err", err)
		return nil
	}
	m := p.Message
	m.Topic, m.Seq, m.Epoch = topic, seq, st.pos.Epoch
	return m
}

// decodeChannelMessage decodes what arrives on a channel: an encoded publication, or one
// that carries its history position (see historyMark).
func decodeChannelMessage(payload string) (*switchboard.Publication, error) {
	rest, ok := strings.CutPrefix(payload, historyMark)
	if !ok {
		return switchboard.DecodePublication([]byte(payload))
	}
	seqText, rest, ok1 := strings.Cut(rest, ":")
	epoch, data, ok2 := strings.Cut(rest, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok1 || !ok2 || err != nil || seq == 0 || epoch == "" {
		return nil, fmt.Errorf("%w: malformed history position", switchboard.ErrBadMessage)
	}
	p, err := switchboard.DecodePublication([]byte(data))
	if err != nil {
		return nil, err
	}
	if p.Kind != switchboard.TargetTopic {
		return nil, fmt.Errorf("%w: history position on a %s publication", switchboard.ErrBadMessage, p.Kind)
	}
	p.Message.Seq, p.Message.Epoch = seq, epoch
	return p, nil
}

// parsePosition reads the {seq, epoch} reply of publishHistoryScript.
func parsePosition(v any) (switchboard.StreamPosition, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return switchboard.StreamPosition{}, fmt.Errorf("switchboard/redis: unexpected history reply %v", v)
	}
	seq, err := replyUint(pair[0])
	epoch, _ := pair[1].(string)
	if err != nil || seq == 0 || epoch == "" {
		return switchboard.StreamPosition{}, fmt.Errorf("switchboard/redis: unexpected history reply %v", v)
	}
	return switchboard.StreamPosition{Seq: seq, Epoch: epoch}, nil
}

// replyUint reads a non-negative integer that Redis returned as an integer or a string.
func replyUint(v any) (uint64, error) {
	switch x := v.(type) {
	case int64:
		if x >= 0 {
			return uint64(x), nil
		}
	case string:
		return strconv.ParseUint(x, 10, 64)
	}
	return 0, fmt.Errorf("switchboard/redis: not a count: %v", v)
}

// newEpoch returns a random epoch name: 16 hex digits, never containing ':'.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
