package notifier

import (
	"context"
	"errors"

	"github.com/switchboardrt/switchboard"
)

// Protocol returns the protocol of the notifier endpoint, for mounting it yourself with
// Manager.Endpoint (with a wrapped Codec, say):
//
//	m.Endpoint(switchboard.EndpointConfig{Codec: notifier.Codec{}, Protocol: agg.Protocol()})
//
// The first message a connection sends, whatever it holds, subscribes it to the
// aggregator's topic and flushes the queued notifications to it, in order; later
// messages are ignored (counted as "ignored"). When the manager has Config.RequireAuth,
// only a connection authenticated at the handshake (token query parameter, cookie or
// Authorization header) is subscribed; the messages of any other are ignored (counted as
// "unauthorized") and the manager closes it (1008) after Config.AuthTimeout.
func (a *Aggregator) Protocol() switchboard.Protocol { return protocol{a} }

type protocol struct{ a *Aggregator }

// OnConnect does nothing: a connection is subscribed by its first message.
func (protocol) OnConnect(context.Context, *switchboard.Conn) {}

// OnMessage subscribes the connection on its first message.
func (p protocol) OnMessage(ctx context.Context, c *switchboard.Conn, frame []byte, _ bool) {
	a := p.a
	if a.m.Config().RequireAuth && c.Identity() == nil {
		c.CountIn("unauthorized", len(frame))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.subs[c]; ok {
		c.CountIn("ignored", len(frame))
		return
	}
	c.CountIn(TypeSubscribe, len(frame))
	// Under mu no notification is queued or published: the backlog, then the live
	// notifications, reach this connection in order, each once.
	if err := c.Subscribe(ctx, a.topic); err != nil {
		if !errors.Is(err, switchboard.ErrClosed) {
			a.m.Config().Logger.Warn("notifier: subscribe failed", "client", c.ID(), "err", err)
		}
		return
	}
	codec := c.Codec()
	for i, msg := range a.queue {
		frame, err := codec.Encode(nil, msg)
		if err != nil {
			if !errors.Is(err, switchboard.ErrUnsupported) {
				a.m.Config().Logger.Error("notifier: encoding a queued message", "type", msg.Type, "err", err)
			}
			continue
		}
		if err := c.SendFrame(frame); err != nil {
			// The connection is closing: keep what it did not take for the next one.
			clear(a.queue[:i])
			a.queue = a.queue[i:]
			c.Unsubscribe(a.topic)
			return
		}
	}
	clear(a.queue)
	a.queue = a.queue[:0]
	a.subs[c] = struct{}{}
}

// OnClose forgets the connection: once none is left, notifications are queued again.
func (p protocol) OnClose(c *switchboard.Conn, _ int, _ string) {
	p.a.mu.Lock()
	delete(p.a.subs, c)
	p.a.mu.Unlock()
}
