package switchboard

import (
	"context"
	"fmt"
	"sync"
)

// HandlerFunc handles one inbound message of a registered type. It runs on the connection's
// read goroutine, so messages of one connection are handled in order; a slow handler delays
// only its own connection. ctx is cancelled when the manager shuts down.
//
// To answer, call c.Reply(msg, …). A returned *Error is sent to the client as ERROR with its
// code; any other error is sent as ERROR "internal" and reported to Config.OnError. A panic
// is recovered and treated like an error; the connection lives on.
type HandlerFunc func(ctx context.Context, c *Conn, msg *Message) error

// Router maps message types to handlers. It is safe for concurrent use.
type Router struct {
	mu sync.RWMutex
	h  map[string]HandlerFunc
}

// NewRouter returns an empty Router.
func NewRouter() *Router { return &Router{h: make(map[string]HandlerFunc)} }

// controlTypes are handled by the manager itself and cannot be routed.
var controlTypes = map[string]bool{
	TypeConnect: true, TypeAuthenticate: true, TypeSubscribe: true, TypeUnsubscribe: true,
	TypePing: true, TypePong: true, TypeDisconnect: true, TypePresence: true,
}

// Handle registers h for messages of type typ, replacing any earlier handler. It panics on
// an empty type, a nil handler or a control type, which are programming errors.
func (r *Router) Handle(typ string, h HandlerFunc) {
	if typ == "" || h == nil {
		panic("switchboard: Handle needs a message type and a handler")
	}
	if controlTypes[typ] {
		panic(fmt.Sprintf("switchboard: %s is a control message handled by the manager", typ))
	}
	r.mu.Lock()
	r.h[typ] = h
	r.mu.Unlock()
}

// Remove unregisters the handler of typ.
func (r *Router) Remove(typ string) {
	r.mu.Lock()
	delete(r.h, typ)
	r.mu.Unlock()
}

func (r *Router) lookup(typ string) HandlerFunc {
	r.mu.RLock()
	h := r.h[typ]
	r.mu.RUnlock()
	return h
}
