package switchboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/switchboardrt/switchboard/auth"
)

// Protocol handles what arrives on an endpoint's connections. The default protocol is wire
// protocol v1: it decodes each frame with the endpoint's Codec, answers the control messages
// (CONNECT, AUTHENTICATE, SUBSCRIBE, UNSUBSCRIBE, PING, PONG, DISCONNECT) and dispatches
// every other type to the connection's and the manager's Router. Adapters for other wire
// formats (see adapters/) implement their own on top of Conn's methods.
type Protocol interface {
	// OnConnect is called once the connection is registered, before any message is read.
	OnConnect(ctx context.Context, c *Conn)
	// OnMessage is called with each frame the client sends, in order, on the connection's
	// read goroutine. binary reports a binary frame.
	OnMessage(ctx context.Context, c *Conn, frame []byte, binary bool)
	// OnClose is called once the connection is closed and unregistered.
	OnClose(c *Conn, code int, reason string)
}

// allowedBeforeAuth are the types a connection may send before it authenticates when
// Config.RequireAuth is set.
var allowedBeforeAuth = map[string]bool{
	TypeConnect: true, TypeAuthenticate: true, TypePing: true, TypePong: true, TypeDisconnect: true,
}

// envelopeProtocol is wire protocol v1.
type envelopeProtocol struct{}

func (envelopeProtocol) OnConnect(context.Context, *Conn) {}
func (envelopeProtocol) OnClose(*Conn, int, string)       {}
func (p envelopeProtocol) OnMessage(ctx context.Context, c *Conn, frame []byte, binary bool) {
	if c.batch && !binary && bytes.IndexByte(frame, '\n') >= 0 {
		// A batch: one envelope per line. The first line was charged to the rate limit
		// with the frame; each further one is charged on its own.
		first := true
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if !first && !c.allow() {
				continue
			}
			first = false
			p.handle(ctx, c, line)
		}
		return
	}
	if binary && !c.ep.codec.Binary() {
		c.CountIn("invalid", len(frame))
		c.sendError(nil, CodeBadMessage, "binary frames are not accepted; send JSON text frames")
		return
	}
	p.handle(ctx, c, frame)
}

// handle decodes and handles one envelope.
func (p envelopeProtocol) handle(ctx context.Context, c *Conn, frame []byte) {
	var msg Message
	if err := c.ep.codec.Decode(frame, &msg); err != nil {
		c.CountIn("invalid", len(frame))
		c.sendError(&msg, CodeBadMessage, err.Error())
		return
	}
	c.CountIn(msg.Type, len(frame))
	m := c.m
	if m.cfg.RequireAuth && c.identity.Load() == nil && !allowedBeforeAuth[msg.Type] {
		c.sendError(&msg, CodeUnauthorized, "authenticate before sending "+msg.Type)
		return
	}
	switch msg.Type {
	case TypeConnect:
		p.connect(c, &msg)
	case TypeAuthenticate:
		p.authenticate(ctx, c, &msg)
	case TypeSubscribe:
		p.subscribe(ctx, c, &msg)
	case TypeUnsubscribe:
		p.unsubscribe(c, &msg)
	case TypePresence:
		p.presence(ctx, c, &msg)
	case TypePing:
		_ = c.Send(NewPong(&msg))
	case TypePong:
		// Any inbound message proves the client alive; the read loop has noted it.
	case TypeDisconnect:
		var req struct {
			Reason string `json:"reason"`
		}
		_ = msg.DecodePayload(&req)
		reason := "client disconnected"
		if req.Reason != "" {
			reason = truncate(req.Reason, 100)
		}
		c.closeWith(CloseNormal, reason, false)
	default:
		dispatch(ctx, c, &msg)
	}
}

func (envelopeProtocol) connect(c *Conn, msg *Message) {
	ack := map[string]any{
		"client_id":     c.id,
		"requires_auth": c.m.cfg.RequireAuth,
		"authenticated": c.identity.Load() != nil,
		"ping_interval": 0.0,
	}
	if d := c.m.cfg.PingInterval; d > 0 {
		ack["ping_interval"] = d.Seconds()
	}
	if id := c.identity.Load(); id != nil {
		ack["user_id"] = id.UserID
	}
	_ = c.Reply(msg, TypeConnectAck, ack)
}

func (envelopeProtocol) authenticate(ctx context.Context, c *Conn, msg *Message) {
	var req struct {
		Auth struct {
			Token string `json:"token"`
		} `json:"auth"`
		Token string `json:"token"` // accepted too: {"token": "…"}
	}
	if err := msg.DecodePayload(&req); err != nil {
		c.sendError(msg, CodeBadMessage, "AUTHENTICATE payload must be {\"auth\": {\"token\": \"…\"}}")
		return
	}
	token := req.Auth.Token
	if token == "" {
		token = req.Token
	}
	// The answer goes out before the messages kept for the user, which follow it at once.
	_, err := c.authenticate(ctx, token, func(id *auth.Identity) {
		out := map[string]any{"user_id": id.UserID}
		if !id.ExpiresAt.IsZero() {
			out["expires_at"] = id.ExpiresAt.Unix()
		}
		_ = c.Reply(msg, TypeAuthenticateSuccess, out)
	})
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return
		}
		_ = c.Reply(msg, TypeAuthenticateFailure, map[string]any{"reason": authReason(err)})
		c.mu.Lock()
		c.authFailures++
		n := c.authFailures
		c.mu.Unlock()
		if max := c.m.cfg.MaxAuthFailures; max > 0 && n >= max {
			c.closeWith(CloseAuthFailed, "too many failed authentication attempts", true)
		}
		return
	}
}

// topicsOf reads {"subscriptions": [...]} (or a single string) from a SUBSCRIBE/UNSUBSCRIBE.
func topicsOf(msg *Message) ([]string, error) {
	var req struct {
		Subscriptions json.RawMessage `json:"subscriptions"`
	}
	if err := msg.DecodePayload(&req); err != nil {
		return nil, err
	}
	var list []string
	if err := json.Unmarshal(req.Subscriptions, &list); err != nil {
		var one string
		if json.Unmarshal(req.Subscriptions, &one) != nil || one == "" {
			return nil, fmt.Errorf("%w: payload must be {\"subscriptions\": [\"topic\", …]}", ErrBadMessage)
		}
		list = []string{one}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w: subscriptions is empty", ErrBadMessage)
	}
	return list, nil
}

func (envelopeProtocol) subscribe(ctx context.Context, c *Conn, msg *Message) {
	topics, err := topicsOf(msg)
	if err != nil {
		c.sendError(msg, CodeBadMessage, err.Error())
		return
	}
	opts, err := subscribeOptionsOf(msg, topics) // "recover", and SUBSCRIBE_SUCCESS with positions
	if err != nil {
		c.sendError(msg, CodeBadMessage, err.Error())
		return
	}
	_, fresh, err := c.subscribeWith(ctx, opts, topics)
	if err != nil {
		var se *SubscribeError
		if !errors.As(err, &se) {
			if !errors.Is(err, ErrClosed) {
				c.sendError(msg, CodeInternal, "subscribe failed")
			}
			return
		}
		failed := make([]string, 0, len(se.Topics))
		reason := ""
		for _, t := range topics {
			if r, ok := se.Topics[t]; ok && !contains(failed, t) {
				failed = append(failed, t)
				if reason == "" {
					reason = r
				}
			}
		}
		_ = c.Reply(msg, TypeSubscribeFailure, map[string]any{
			"subscriptions": failed, "reason": reason, "errors": se.Topics, "message": se.Err.Error(),
		})
		return
	}
	c.announce(TypeJoin, fresh)
}

func (envelopeProtocol) unsubscribe(c *Conn, msg *Message) {
	topics, err := topicsOf(msg)
	if err != nil {
		c.sendError(msg, CodeBadMessage, err.Error())
		return
	}
	c.Unsubscribe(topics...)
	_ = c.Reply(msg, TypeUnsubscribeAck, map[string]any{"subscriptions": topics})
}

// dispatch runs the handler registered for msg.Type, recovering panics.
func dispatch(ctx context.Context, c *Conn, msg *Message) {
	h := c.handler(msg.Type)
	if h == nil {
		c.sendError(msg, CodeUnknownType, fmt.Sprintf("no handler for message type %q", truncate(msg.Type, 64)))
		return
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("switchboard: handler for %s panicked: %v\n%s", msg.Type, r, debug.Stack())
			}
		}()
		err = h(ctx, c, msg)
	}()
	if err == nil {
		return
	}
	var pe *Error
	if errors.As(err, &pe) {
		c.sendError(msg, pe.Code, pe.Message)
		return
	}
	if errors.Is(err, auth.ErrForbidden) {
		c.sendError(msg, CodeForbidden, err.Error())
		return
	}
	c.m.reportError(c, err)
	c.sendError(msg, CodeInternal, "internal error")
}
