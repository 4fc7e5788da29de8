package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/switchboardrt/switchboard"
	"github.com/switchboardrt/switchboard/auth"
)

// request is a JSON-RPC request object, its members kept raw to check their types.
type request struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

// check validates r and returns its method and id (nil for a notification). On error,
// id is r's id when it is valid, so the error response can carry it.
func (r *request) check() (method string, id json.RawMessage, e *Error) {
	if id = r.ID; id != nil {
		switch c := id[0]; {
		case c == '"', c == 'n', c == '-', c >= '0' && c <= '9':
		default:
			return "", json.RawMessage("null"), NewError(CodeInvalidRequest, "invalid request", "id must be a string, a number or null")
		}
	}
	if !bytes.Equal(r.JSONRPC, []byte(`"2.0"`)) {
		return "", orNull(id), NewError(CodeInvalidRequest, "invalid request", `jsonrpc must be "2.0"`)
	}
	if len(r.Method) == 0 || r.Method[0] != '"' || json.Unmarshal(r.Method, &method) != nil || method == "" {
		return "", orNull(id), NewError(CodeInvalidRequest, "invalid request", "method must be a non-empty string")
	}
	if p := r.Params; p != nil && p[0] != '[' && p[0] != '{' && p[0] != 'n' {
		return "", orNull(id), NewError(CodeInvalidRequest, "invalid request", "params must be an array or an object")
	}
	return method, id, nil
}

func orNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return json.RawMessage("null")
	}
	return id
}

// protocol is the switchboard.Protocol of a JSON-RPC endpoint.
type protocol struct {
	s *Server
	m *switchboard.Manager

	authFailures sync.Map // *switchboard.Conn → *atomic.Int32 failed authenticate calls (read goroutine only)
}

func (p *protocol) OnConnect(context.Context, *switchboard.Conn) {}

func (p *protocol) OnClose(c *switchboard.Conn, _ int, _ string) { p.authFailures.Delete(c) }

func (p *protocol) OnMessage(ctx context.Context, c *switchboard.Conn, frame []byte, binary bool) {
	if binary {
		c.CountIn("invalid", len(frame))
		p.send(c, errorResponse(nil, NewError(CodeInvalidRequest, "invalid request", "send JSON text frames, not binary ones")))
		return
	}
	trimmed := bytes.TrimLeft(frame, " \t\r\n")
	if !json.Valid(trimmed) {
		c.CountIn("invalid", len(frame))
		p.send(c, errorResponse(nil, NewError(CodeParseError, "parse error", nil)))
		return
	}
	if trimmed[0] != '[' {
		if out := p.handle(ctx, c, trimmed, true); out != nil {
			p.send(c, out)
		}
		return
	}
	var batch []json.RawMessage
	_ = json.Unmarshal(trimmed, &batch) // valid JSON array
	if len(batch) == 0 {
		c.CountIn("invalid", len(frame))
		p.send(c, errorResponse(nil, NewError(CodeInvalidRequest, "invalid request", "empty batch")))
		return
	}
	if max := p.maxBatch(); max > 0 && len(batch) > max {
		c.CountIn("invalid", len(frame))
		p.send(c, errorResponse(nil, NewError(CodeBatchTooLarge, "batch too large", map[string]int{"max": max})))
		return
	}
	out := []byte{'['}
	n := 0
	for i, entry := range batch {
		var resp []byte
		if i > 0 && !c.Allow() {
			var r request
			_ = json.Unmarshal(entry, &r)
			if len(r.ID) > 0 && !bytes.Equal(r.ID, []byte("null")) {
				resp = errorResponse(r.ID, NewError(CodeRateLimited, "rate limited", nil))
			}
		} else {
			resp = p.handle(ctx, c, entry, false)
		}
		if resp == nil {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, resp...)
		n++
	}
	if n > 0 {
		p.send(c, append(out, ']'))
	}
}

func (p *protocol) maxBatch() int {
	if p.s.MaxBatch == 0 {
		return DefaultMaxBatch
	}
	return p.s.MaxBatch
}

func (p *protocol) send(c *switchboard.Conn, frame []byte) { _ = c.SendFrame(frame) }

// handle answers one request object and returns its response, or nil for none. single is
// true for a request that came alone in its frame: its response may then be sent before
// handle returns (authenticate does, ahead of the messages kept for the user), and handle
// returns nil.
func (p *protocol) handle(ctx context.Context, c *switchboard.Conn, raw []byte, single bool) []byte {
	var r request
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &r) != nil {
		c.CountIn("invalid", len(raw))
		return errorResponse(nil, NewError(CodeInvalidRequest, "invalid request", "a request must be an object"))
	}
	method, id, perr := r.check()
	if perr != nil {
		c.CountIn("invalid", len(raw))
		return errorResponse(id, perr)
	}
	c.CountIn(method, len(raw))
	params := r.Params
	if bytes.Equal(params, []byte("null")) {
		params = nil
	}
	// answer builds the response for a method that queues it itself, at the moment that
	// keeps it ahead of what follows (authenticate: the kept inbox messages; subscribe: the
	// topic's pushes), and marks the request answered.
	var answer func(result any) []byte
	answered := false
	if single && id != nil {
		answer = func(result any) []byte {
			answered = true
			return p.resultResponse(c, method, id, result)
		}
	}
	result, err := p.call(ctx, c, method, params, answer)
	if id == nil || answered { // a notification gets no response, whatever happened
		return nil
	}
	if err != nil {
		if errors.Is(err, switchboard.ErrClosed) {
			return nil
		}
		return errorResponse(id, p.toError(c, method, err))
	}
	return p.resultResponse(c, method, id, result)
}

// resultResponse builds {"jsonrpc":"2.0","result":result,"id":id}.
func (p *protocol) resultResponse(c *switchboard.Conn, method string, id json.RawMessage, result any) []byte {
	b, merr := json.Marshal(result)
	if merr != nil {
		p.report(c, fmt.Errorf("jsonrpc: marshal result of %s: %w", method, merr))
		return errorResponse(id, NewError(CodeInternalError, "internal error", nil))
	}
	out := make([]byte, 0, len(b)+len(id)+40)
	out = append(out, `{"jsonrpc":"2.0","result":`...)
	out = append(out, b...)
	out = append(out, `,"id":`...)
	out = append(out, id...)
	return append(out, '}')
}

// call runs a method, recovering panics. answer, when not nil, may be used by authenticate
// and subscribe to queue their result before they return.
func (p *protocol) call(ctx context.Context, c *switchboard.Conn, method string, params json.RawMessage, answer func(any) []byte) (result any, err error) {
	if method != MethodAuthenticate && p.m.Config().RequireAuth && c.Identity() == nil {
		return nil, NewError(CodeUnauthorized, "unauthorized", "authenticate first")
	}
	var h HandlerFunc
	switch method {
	case MethodAuthenticate:
		h = func(ctx context.Context, c *switchboard.Conn, params json.RawMessage) (any, error) {
			return p.authenticate(ctx, c, params, answer)
		}
	case MethodSubscribe:
		h = func(ctx context.Context, c *switchboard.Conn, params json.RawMessage) (any, error) {
			return p.subscribe(ctx, c, params, answer)
		}
	case MethodUnsubscribe:
		h = p.unsubscribe
	default:
		if h = p.s.method(method); h == nil {
			return nil, NewError(CodeMethodNotFound, "method not found", map[string]string{"method": method})
		}
	}
	defer func() {
		if rec := recover(); rec != nil {
			result = nil
			err = fmt.Errorf("jsonrpc: method %s panicked: %v\n%s", method, rec, debug.Stack())
		}
	}()
	return h(ctx, c, params)
}

// toError maps a handler's error to the error object sent to the client.
func (p *protocol) toError(c *switchboard.Conn, method string, err error) *Error {
	var je *Error
	if errors.As(err, &je) {
		return je
	}
	if errors.Is(err, auth.ErrForbidden) {
		return NewError(CodeForbidden, "forbidden", err.Error())
	}
	var se *switchboard.Error
	if errors.As(err, &se) {
		switch se.Code {
		case switchboard.CodeUnauthorized:
			return NewError(CodeUnauthorized, "unauthorized", se.Message)
		case switchboard.CodeForbidden:
			return NewError(CodeForbidden, "forbidden", se.Message)
		}
		return NewError(-32000, se.Message, map[string]string{"code": string(se.Code)})
	}
	p.report(c, fmt.Errorf("jsonrpc: method %s: %w", method, err))
	return NewError(CodeInternalError, "internal error", nil)
}

func (p *protocol) report(c *switchboard.Conn, err error) {
	if f := p.s.OnError; f != nil {
		f(c, err)
		return
	}
	if f := p.m.Config().OnError; f != nil {
		f(c, err)
		return
	}
	p.m.Config().Logger.Error("jsonrpc: handler failed", "client", c.ID(), "err", err)
}

// errorResponse builds {"jsonrpc":"2.0","error":e,"id":id} (id null when nil).
func errorResponse(id json.RawMessage, e *Error) []byte {
	out := append([]byte(nil), `{"jsonrpc":"2.0","error":`...)
	out = append(out, e.marshal()...)
	out = append(out, `,"id":`...)
	out = append(out, orNull(id)...)
	return append(out, '}')
}

// stringParam reads a single string param given as [value] or {name: value}.
func stringParam(params json.RawMessage, name string) (string, error) {
	var v string
	var err error
	switch {
	case len(params) == 0:
		err = errors.New("missing params")
	case params[0] == '[':
		var list []string
		if err = json.Unmarshal(params, &list); err == nil && len(list) != 1 {
			err = fmt.Errorf("expected 1 positional param, got %d", len(list))
		}
		if err == nil {
			v = list[0]
		}
	default:
		var obj map[string]string
		if err = json.Unmarshal(params, &obj); err == nil {
			v = obj[name]
		}
	}
	if err == nil && v == "" {
		err = fmt.Errorf("%s must be a non-empty string", name)
	}
	if err != nil {
		return "", NewError(CodeInvalidParams, "invalid params", fmt.Sprintf("expected [%s] or {%q: %s}: %v", name, name, name, err))
	}
	return v, nil
}

// authenticate answers the authenticate method. With answer set, the result is sent as soon
// as the connection is authenticated, before the messages kept in the user's inbox, which
// follow it at once: a client can set up its handlers when the call returns.
func (p *protocol) authenticate(ctx context.Context, c *switchboard.Conn, params json.RawMessage, answer func(any) []byte) (any, error) {
	token, err := stringParam(params, "token")
	if err != nil {
		return nil, err
	}
	var opts switchboard.AuthenticateOptions
	if answer != nil {
		opts.Answer = func(id *auth.Identity) { p.send(c, answer(authResult(id))) }
	}
	id, err := c.AuthenticateWith(ctx, token, opts)
	if err != nil {
		if errors.Is(err, switchboard.ErrClosed) {
			return nil, err
		}
		v, _ := p.authFailures.LoadOrStore(c, new(atomic.Int32))
		n := v.(*atomic.Int32).Add(1)
		if max := p.m.Config().MaxAuthFailures; max > 0 && int(n) >= max {
			c.Close(switchboard.CloseAuthFailed, "too many failed authentication attempts")
		}
		return nil, NewError(CodeUnauthorized, "unauthorized", map[string]string{"reason": authReason(err)})
	}
	return authResult(id), nil
}

// authResult is the result of a successful authenticate: {"user_id", "expires_at"}.
func authResult(id *auth.Identity) map[string]any {
	out := map[string]any{"user_id": id.UserID}
	if !id.ExpiresAt.IsZero() {
		out["expires_at"] = id.ExpiresAt.Unix()
	}
	return out
}

// authReason is the reason sent in an authenticate error's data.
func authReason(err error) string {
	switch {
	case errors.Is(err, switchboard.ErrTooManyConnections):
		return "too_many_connections"
	case errors.Is(err, switchboard.ErrUserMismatch):
		return "user_mismatch"
	case errors.Is(err, switchboard.ErrAuthDisabled):
		return "auth_disabled"
	}
	return auth.Reason(err)
}

// subscribe answers the subscribe method. With answer set, the result is queued before any
// push of the topic, so the client has the subscription id before the first notification.
func (p *protocol) subscribe(ctx context.Context, c *switchboard.Conn, params json.RawMessage, answer func(any) []byte) (any, error) {
	topic, err := stringParam(params, "topic")
	if err != nil {
		return nil, err
	}
	var opts switchboard.SubscribeOptions
	if answer != nil {
		opts.ReplyFrame = func(switchboard.SubscribeResult) []byte { return answer(SubscriptionID(topic)) }
	}
	if _, err := c.SubscribeWith(ctx, opts, topic); err != nil {
		var se *switchboard.SubscribeError
		if !errors.As(err, &se) {
			return nil, err
		}
		reason := se.Topics[topic]
		data := map[string]string{"topic": topic, "reason": reason}
		switch reason {
		case "invalid_topic":
			return nil, NewError(CodeInvalidParams, "invalid topic", data)
		case string(switchboard.CodeForbidden):
			return nil, NewError(CodeForbidden, "forbidden", data)
		case "too_many_subscriptions":
			return nil, NewError(CodeTooManySubscriptions, "too many subscriptions", data)
		}
		return nil, err
	}
	return SubscriptionID(topic), nil
}

func (p *protocol) unsubscribe(_ context.Context, c *switchboard.Conn, params json.RawMessage) (any, error) {
	id, err := stringParam(params, "subscription")
	if err != nil {
		return nil, err
	}
	for _, t := range c.Subscriptions() {
		if SubscriptionID(t) == id {
			c.Unsubscribe(t)
			return true, nil
		}
	}
	return false, nil
}
