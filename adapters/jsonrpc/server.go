package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	"github.com/switchboardrt/switchboard"
)

// Names of the built-in methods. They cannot be registered.
const (
	// MethodAuthenticate authenticates the connection: params [token] or {"token": token};
	// result {"user_id": …, "expires_at": unix seconds (when the token expires)}.
	MethodAuthenticate = "authenticate"
	// MethodSubscribe subscribes to a topic: params [topic] or {"topic": topic}; result the
	// subscription id (see SubscriptionID).
	MethodSubscribe = "subscribe"
	// MethodUnsubscribe ends a subscription: params [id] or {"subscription": id}; result
	// true, or false when the connection had no such subscription.
	MethodUnsubscribe = "unsubscribe"
	// MethodSubscription is the method of the notifications that carry topic pushes.
	MethodSubscription = "subscription"
)

// DefaultMaxBatch is the default of Server.MaxBatch.
const DefaultMaxBatch = 100

// HandlerFunc answers one request: params is the raw JSON of the request's params (nil
// when absent), the result is marshalled with encoding/json. Register builds one from a
// typed function; use Server.Handle to register a HandlerFunc directly.
type HandlerFunc func(ctx context.Context, c *switchboard.Conn, params json.RawMessage) (any, error)

// Server is a registry of JSON-RPC methods, served on an endpoint of a switchboard.Manager
// by Handler. Register methods before serving; a Server is safe for concurrent use.
type Server struct {
	// MaxBatch caps the requests of one batch; a larger batch is answered with one error
	// CodeBatchTooLarge. Default (zero) DefaultMaxBatch; negative: no cap. The manager's
	// message rate limit charges a batch as one message.
	MaxBatch int
	// OnError is called with the errors of handlers that are reported as -32603 (unknown
	// errors, panics with their stack, results that cannot be marshalled). Default: the
	// manager's Config.OnError, if any.
	OnError func(c *switchboard.Conn, err error)

	mu      sync.RWMutex
	methods map[string]HandlerFunc
}

// NewServer returns a Server without methods.
func NewServer() *Server { return &Server{methods: map[string]HandlerFunc{}} }

// Handle registers h under name. It panics when name is empty, a built-in method
// (authenticate, subscribe, unsubscribe, subscription) or already registered.
func (s *Server) Handle(name string, h HandlerFunc) {
	if name == "" || h == nil {
		panic("jsonrpc: Handle needs a name and a handler")
	}
	switch name {
	case MethodAuthenticate, MethodSubscribe, MethodUnsubscribe, MethodSubscription:
		panic("jsonrpc: method " + name + " is built in")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.methods == nil {
		s.methods = map[string]HandlerFunc{}
	}
	if _, dup := s.methods[name]; dup {
		panic("jsonrpc: method " + name + " registered twice")
	}
	s.methods[name] = h
}

func (s *Server) method(name string) HandlerFunc {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.methods[name]
}

// Register registers fn as the method name of s, with its params decoded into P:
//   - params by name (an object) are decoded with encoding/json, unknown fields refused;
//   - params by position (an array) are decoded into P directly when P is a slice or an
//     array; into the exported fields of P in declaration order when P is a struct (fewer
//     elements leave the last fields zero, more are refused); and from the single element
//     when P is anything else (e.g. [42] into a uint64, ["0xabc"] into a string);
//   - absent or null params leave P zero;
//   - a P of type json.RawMessage gets the params as they are.
//
// A params value that cannot be decoded is answered with -32602 (invalid params). The
// result R is marshalled with encoding/json. fn's error is answered as described on
// Server.Handler. Register panics like Server.Handle.
func Register[P, R any](s *Server, name string, fn func(ctx context.Context, c *switchboard.Conn, params P) (R, error)) {
	s.Handle(name, func(ctx context.Context, c *switchboard.Conn, raw json.RawMessage) (any, error) {
		var p P
		if err := decodeParams(raw, &p); err != nil {
			return nil, NewError(CodeInvalidParams, "invalid params", err.Error())
		}
		return fn(ctx, c, p)
	})
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// decodeParams decodes raw params into *dst (see Register).
func decodeParams(raw json.RawMessage, dst any) error {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	v := reflect.ValueOf(dst).Elem()
	if v.Type() == rawMessageType {
		v.SetBytes(append([]byte(nil), raw...))
		return nil
	}
	if raw[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		return dec.Decode(dst)
	}
	if raw[0] != '[' {
		return errors.New("params must be an array or an object")
	}
	t := v.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Interface:
		return json.Unmarshal(raw, dst)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return err
	}
	if t.Kind() != reflect.Struct || implementsUnmarshaler(t) {
		if len(elems) != 1 {
			return fmt.Errorf("expected 1 positional param, got %d", len(elems))
		}
		return json.Unmarshal(elems[0], dst)
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(t))
		}
		v = v.Elem()
	}
	var fields []int
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && f.Tag.Get("json") != "-" {
			fields = append(fields, i)
		}
	}
	if len(elems) > len(fields) {
		return fmt.Errorf("expected at most %d positional params, got %d", len(fields), len(elems))
	}
	for i, e := range elems {
		f := v.Field(fields[i])
		if err := json.Unmarshal(e, f.Addr().Interface()); err != nil {
			return fmt.Errorf("param %d (%s): %w", i, t.Field(fields[i]).Name, err)
		}
	}
	return nil
}

func implementsUnmarshaler(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]())
}

// EndpointConfig returns the configuration of a JSON-RPC endpoint of m: Codec and a
// Protocol bound to s and m. Pass it to m.Endpoint (after changing it if need be, e.g. to
// wrap the codec).
func (s *Server) EndpointConfig(m *switchboard.Manager) switchboard.EndpointConfig {
	return switchboard.EndpointConfig{Codec: Codec{}, Protocol: &protocol{s: s, m: m}}
}

// Handler returns the http.Handler of a JSON-RPC endpoint of m, serving s's methods. Its
// connections share m's registry, limits and authentication: m's handshake token,
// message rate limit, MaxMessageSize, RequireAuth, AuthTimeout, PingInterval (as
// WebSocket pings) and topic authorizer apply as on m's default endpoint.
//
// Each text frame holds one request or a batch (an array of requests). A request gets a
// response with the same id; a notification (no "id") gets none. A handler's error is
// answered with its *Error (found with errors.As) as is; switchboard.ErrClosed is not
// answered; an error wrapping auth.ErrForbidden gets CodeForbidden; a *switchboard.Error
// gets CodeUnauthorized, CodeForbidden or, for other codes, -32000 with its message; any
// other error, and a panic, gets -32603 "internal error" (the connection stays open) and
// is reported to OnError. With m's RequireAuth set, only authenticate is allowed before
// the connection has authenticated: other requests get -32001 "unauthorized".
func (s *Server) Handler(m *switchboard.Manager) http.Handler {
	return m.Endpoint(s.EndpointConfig(m))
}
