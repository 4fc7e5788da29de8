package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboardrt/switchboard"
)

// Inbox is a switchboard.InboxStore in Redis, shared by every node that uses the same Redis
// and prefix, so that a message kept on one node is delivered when its user logs in on any
// other.
//
// Each user's inbox is a list, "<prefix>:inbox:<user>", oldest first, whose entries are
//
//	<expires, Unix milliseconds>:<length of the ID>:<ID><the message, as the JSON codec writes it>
//
// Put appends, trims the list to the size and sets the key to expire with its newest
// entry; Take reads and deletes the list in one step and Remove deletes one entry by ID,
// each in a Lua script, so that the three are atomic with respect to each other. Expiry
// times are taken from the Redis server's clock, so the nodes' clocks do not matter.
//
// The Redis Broker is an InboxStore itself (it uses an Inbox on its own connection pool
// and prefix), and the Manager uses it when Config.Inbox.Store is not set.
type Inbox struct {
	client goredis.UniversalClient
	prefix string
}

// NewInbox returns an inbox store on client, with keys under prefix (default
// "switchboard"). The caller keeps ownership of client and closes it.
func NewInbox(client goredis.UniversalClient, prefix string) *Inbox {
	if prefix == "" {
		prefix = "switchboard"
	}
	return &Inbox{client: client, prefix: prefix}
}

// Inbox returns the broker's inbox store: on its connection pool, with keys under its
// prefix. It works until the broker is closed.
func (b *Broker) Inbox() *Inbox { return &Inbox{client: b.client, prefix: b.opts.Prefix} }

// Put implements switchboard.InboxStore with the broker's Inbox.
func (b *Broker) Put(ctx context.Context, user string, msg *switchboard.Message, size int, ttl time.Duration) error {
	return b.Inbox().Put(ctx, user, msg, size, ttl)
}

// Take implements switchboard.InboxStore with the broker's Inbox.
func (b *Broker) Take(ctx context.Context, user string) ([]*switchboard.Message, error) {
	return b.Inbox().Take(ctx, user)
}

// Remove implements switchboard.InboxStore with the broker's Inbox.
func (b *Broker) Remove(ctx context.Context, user, id string) (bool, error) {
	return b.Inbox().Remove(ctx, user, id)
}

var (
	_ switchboard.InboxStore = (*Inbox)(nil)
	_ switchboard.InboxStore = (*Broker)(nil)
)

// Key returns the Redis key of user's inbox.
func (s *Inbox) Key(user string) string { return s.prefix + ":inbox:" + user }

// redisNow sets `now` to the Redis server's time in milliseconds.
const redisNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// putScript: KEYS[1] the inbox; ARGV: ID, message, size, TTL in milliseconds.
var putScript = goredis.NewScript(redisNow + `
local ttl = tonumber(ARGV[4])
redis.call('RPUSH', KEYS[1], string.format('%d', now + ttl) .. ':' .. #ARGV[1] .. ':' .. ARGV[1] .. ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
while true do -- drop expired entries from the head, so that they do not wait for a Take
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head or tonumber(string.match(head, '^(%d+):')) > now then break end
  redis.call('LPOP', KEYS[1])
end
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
`)

// takeScript: KEYS[1] the inbox. It returns the entries that have not expired.
var takeScript = goredis.NewScript(redisNow + `
local all = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
local out = {}
for _, e in ipairs(all) do
  local exp = tonumber(string.match(e, '^(%d+):'))
  if exp and exp > now then out[#out + 1] = e end
end
return out
`)

// removeScript: KEYS[1] the inbox; ARGV[1] the ID. It returns 1 when it removed an
// unexpired entry with that ID.
var removeScript = goredis.NewScript(redisNow + `
for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local exp, n = string.match(e, '^(%d+):(%d+):')
  if n and tonumber(exp) > now then
    local from = #exp + #n + 3
    if string.sub(e, from, from + tonumber(n) - 1) == ARGV[1] then
      redis.call('LREM', KEYS[1], 1, e)
      return 1
    end
  end
end
return 0
`)

// Put implements switchboard.InboxStore.
func (s *Inbox) Put(ctx context.Context, user string, msg *switchboard.Message, size int, ttl time.Duration) error {
	if size <= 0 || ttl <= 0 {
		return errors.New("switchboard/redis: inbox size and ttl must be positive")
	}
	ms := ttl.Milliseconds()
	if ms == 0 {
		ms = 1
	}
	data, err := switchboard.JSONCodec{}.Encode(nil, msg)
	if err != nil {
		return err
	}
	if err := putScript.Run(ctx, s.client, []string{s.Key(user)}, msg.ID, data, size, ms).Err(); err != nil {
		return fmt.Errorf("switchboard/redis: inbox put: %w", err)
	}
	return nil
}

// Take implements switchboard.InboxStore. An entry that cannot be decoded is skipped and
// reported in the error, alongside the messages that could be.
func (s *Inbox) Take(ctx context.Context, user string) ([]*switchboard.Message, error) {
	entries, err := takeScript.Run(ctx, s.client, []string{s.Key(user)}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("switchboard/redis: inbox take: %w", err)
	}
	out := make([]*switchboard.Message, 0, len(entries))
	var errs []error
	for _, e := range entries {
		msg, err := decodeEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, msg)
	}
	return out, errors.Join(errs...)
}

// Remove implements switchboard.InboxStore.
func (s *Inbox) Remove(ctx context.Context, user, id string) (bool, error) {
	n, err := removeScript.Run(ctx, s.client, []string{s.Key(user)}, id).Int()
	if err != nil {
		return false, fmt.Errorf("switchboard/redis: inbox remove: %w", err)
	}
	return n == 1, nil
}

// decodeEntry parses "<expires>:<n>:<ID of n bytes><message>".
func decodeEntry(e string) (*switchboard.Message, error) {
	bad := fmt.Errorf("switchboard/redis: malformed inbox entry %.40q", e)
	_, rest, ok := strings.Cut(e, ":")
	if !ok {
		return nil, bad
	}
	nstr, rest, ok := strings.Cut(rest, ":")
	n, err := strconv.Atoi(nstr)
	if !ok || err != nil || n < 0 || n > len(rest) {
		return nil, bad
	}
	msg := new(switchboard.Message)
	if err := (switchboard.JSONCodec{}).Decode([]byte(rest[n:]), msg); err != nil {
		return nil, fmt.Errorf("switchboard/redis: inbox entry: %w", err)
	}
	return msg, nil
}
