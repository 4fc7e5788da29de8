package main

import (
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/switchboardrt/switchboard"
)

// historyOptions are the flags that turn on topic history: the topic patterns, one size
// and one TTL for all of them (switchboard.Config.History is built from them), and the
// recovery limit.
type historyOptions struct {
	Patterns []string
	Size     int
	TTL      time.Duration
}

// historyFlags registers --history, --history-size, --history-ttl and --recover-limit.
func historyFlags(c *cli, o *options) {
	c.section = "Topic history and recovery"
	c.fs.Var(&listValue{p: &o.History.Patterns}, "history",
		"topic `pattern` (path.Match syntax, e.g. 'news', 'chat:*') whose publications are "+
			"kept, with positions, so that a reconnecting client recovers what it missed "+
			"(SUBSCRIBE \"recover\"); repeatable or comma-separated. The broker must keep "+
			"history: the in-memory default and redis:// do, nats:// does not (default: no history)")
	c.bind("history", envName("history"), "")
	c.fs.IntVar(&o.History.Size, "history-size", o.History.Size, "publications kept per topic with history")
	c.bind("history-size", envName("history-size"), strconv.Itoa(o.History.Size))
	c.durationVar(&o.History.TTL, "history-ttl", envName("history-ttl"),
		"how long a publication is kept; a topic without publications this long loses its "+
			"history and starts a new epoch")
	c.intLimit(&o.Config.RecoverLimit, "recover-limit",
		"most publications one recovery sends; a client that missed more is told it could not "+
			"recover", "1000", "no limit")
}

// defaultHistory is what the flags start from: the library's defaults.
func defaultHistory() historyOptions {
	return historyOptions{Size: 100, TTL: 10 * time.Minute}
}

// applyHistory checks the --history flags and builds Config.History from them.
func applyHistory(o *options) error {
	if o.History.Size <= 0 {
		return usageError{fmt.Errorf("--history-size must be positive")}
	}
	if o.History.TTL <= 0 {
		return usageError{fmt.Errorf("--history-ttl must be positive")}
	}
	o.Config.History = nil
	for _, p := range o.History.Patterns {
		if _, err := path.Match(p, ""); err != nil {
			return usageError{fmt.Errorf("--history %q: %v", p, err)}
		}
		o.Config.History = append(o.Config.History, switchboard.HistoryRule{Pattern: p, Size: o.History.Size, TTL: o.History.TTL})
	}
	return nil
}
