package main

import "github.com/switchboardrt/switchboard"

// inboxFlags registers the flags of switchboard.Config.Inbox: which messages to users are
// kept while they are offline. The store is the Redis broker's with --broker redis://…,
// each node's memory otherwise.
func inboxFlags(c *cli, o *options) {
	c.section = "User inbox (messages kept for offline users)"
	in := &o.Config.Inbox
	c.fs.Var(&listValue{p: &in.Types}, "inbox-types",
		"message `type` kept for users with no live connection and delivered, in order, at "+
			"their next login, e.g. NOTIFICATION; repeatable or comma-separated (default: none; "+
			`POST /api/users/{id}/notify with "keep": true keeps one notification)`)
	c.bind("inbox-types", envName("inbox-types"), "")
	c.intLimit(&in.Size, "inbox-size", "messages kept per user; the oldest are dropped first", "100", "inbox off")
	c.durationLimit(&in.TTL, "inbox-ttl", "how long a kept message waits for its user", "24h0m0s", "inbox off")
}

// inboxOff reports whether the manager keeps nothing for offline users.
func inboxOff(cfg switchboard.Config) bool { return cfg.Inbox.Size < 0 || cfg.Inbox.TTL < 0 }
