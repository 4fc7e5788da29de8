package switchboard

import (
	"context"
	"fmt"
	"path"
)

// managerHistory is what a Manager knows of topic history: the rules of Config.History and
// the broker that keeps it. A nil *managerHistory means history is off.
type managerHistory struct {
	rules  []HistoryRule
	broker HistoryBroker
	// limit is Config.RecoverLimit as a HistoryQuery.Limit: negative for no limit.
	limit int
	// ordered is true when the broker delivers a topic's publications in the publishing
	// goroutine under the same lock its history reads take (the in-memory broker): then no
	// publication a history read has seen can be delivered after the read, and a recovered
	// subscription needs no guard against late duplicates (see heldTopic).
	ordered bool
}

// newManagerHistory reads cfg.History (defaults applied). History stays off, with an
// error logged, when the broker is not a HistoryBroker: publishing must keep working on a
// misconfigured server, and the log says that recovery will answer "recovered": false.
func newManagerHistory(cfg Config, b Broker) *managerHistory {
	if len(cfg.History) == 0 {
		return nil
	}
	rules, err := validateHistoryRules(cfg.History)
	if err != nil {
		cfg.Logger.Error("switchboard: history rules ignored", "err", err)
	}
	if len(rules) == 0 {
		return nil
	}
	hb, ok := b.(HistoryBroker)
	if !ok {
		cfg.Logger.Error("switchboard: Config.History is set but the broker keeps no history: "+
			"topics are published without positions and recovery always fails",
			"broker", fmt.Sprintf("%T", b))
		return nil
	}
	_, ordered := b.(*MemoryBroker)
	limit := cfg.RecoverLimit
	if limit < 0 {
		limit = -1
	}
	return &managerHistory{rules: rules, broker: hb, limit: limit, ordered: ordered}
}

// rule returns the first rule whose pattern matches topic.
func (h *managerHistory) rule(topic string) (HistoryRule, bool) {
	if h == nil {
		return HistoryRule{}, false
	}
	for _, r := range h.rules {
		if ok, _ := path.Match(r.Pattern, topic); ok {
			return r, true
		}
	}
	return HistoryRule{}, false
}

// keeps reports whether a publication of type typ to topic goes into the topic's history,
// and under which rule. Presence events (JOIN, LEAVE) describe a moment and are never kept.
func (h *managerHistory) keeps(topic, typ string) (HistoryRule, bool) {
	if h == nil || typ == TypeJoin || typ == TypeLeave {
		return HistoryRule{}, false
	}
	return h.rule(topic)
}

// PublishWithPosition publishes msg to topic like Publish and returns the position the
// publication got in the topic's history. An application that stores a change and
// publishes it can hand the position out with the state it serves, so that a client that
// loads the state subscribes from there (SUBSCRIBE "recover", the JS client's since
// option) and misses nothing in between. For a topic that no Config.History rule selects,
// and for JOIN and LEAVE, which are not kept, the position is zero.
func (m *Manager) PublishWithPosition(ctx context.Context, topic string, msg *Message) (StreamPosition, error) {
	if err := m.validTopic(topic); err != nil {
		return StreamPosition{}, err
	}
	p := &Publication{Kind: TargetTopic, Topic: topic, Message: prepare(msg, topic)}
	if msg != nil {
		if rule, ok := m.hist.keeps(topic, msg.Type); ok {
			return m.publishHistory(ctx, p, rule)
		}
	}
	return StreamPosition{}, m.publish(ctx, p)
}

// publishHistory publishes p, a topic publication, through the history broker, which gives
// it the topic's next position.
func (m *Manager) publishHistory(ctx context.Context, p *Publication, rule HistoryRule) (StreamPosition, error) {
	if m.closed.Load() {
		return StreamPosition{}, ErrShutdown
	}
	if p.Message == nil || p.Message.Type == "" {
		return StreamPosition{}, fmt.Errorf("%w: message without a type", ErrBadMessage)
	}
	return m.hist.broker.PublishHistory(ctx, p, rule)
}

// History reads the history of topic: the publications after since, oldest first, at most
// limit of them (negative: all that are kept), and the topic's current position. With since
// nil it returns only the position; to read everything kept, pass since with Seq 0 and the
// current epoch. Result.Complete says whether nothing after since is missing (see
// HistoryResult). It returns ErrNoHistory for a topic that no Config.History rule selects.
//
// Applications use it to fill a page from a topic's recent publications, or to catch up a
// client whose recovery failed ("recovered": false) as far as the history allows.
func (m *Manager) History(ctx context.Context, topic string, since *StreamPosition, limit int) (HistoryResult, error) {
	if err := m.validTopic(topic); err != nil {
		return HistoryResult{}, err
	}
	if m.closed.Load() {
		return HistoryResult{}, ErrShutdown
	}
	rule, ok := m.hist.rule(topic)
	if !ok {
		return HistoryResult{}, fmt.Errorf("%w: %q", ErrNoHistory, topic)
	}
	return m.hist.broker.History(ctx, topic, HistoryQuery{Since: since, Limit: limit, TTL: rule.TTL})
}
