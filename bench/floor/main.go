// Command floor is the smallest useful broadcaster on coder/websocket: the lower bound on
// overhead for Switchboard's choice of WebSocket library. A client's first text message
// is the topic it subscribes to; POST /publish?topic=T sends the request body to every
// subscriber of T as one text frame. No auth, no envelope, no limits, no keepalive.
//
// Design: one goroutine per connection reads (the topic, then discards until the peer
// goes); a mutex-protected map topic → set of conns; the publishing HTTP handler writes
// to each subscriber itself with conn.Write, one after another, under a write timeout.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

type floor struct {
	mu   sync.Mutex
	subs map[string]map[*websocket.Conn]struct{}
}

func (f *floor) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	_, topic, err := c.Read(context.Background())
	if err != nil {
		return
	}
	f.mu.Lock()
	if f.subs[string(topic)] == nil {
		f.subs[string(topic)] = map[*websocket.Conn]struct{}{}
	}
	f.subs[string(topic)][c] = struct{}{}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); delete(f.subs[string(topic)], c); f.mu.Unlock() }()
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			return
		}
	}
}

func (f *floor) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST a body", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(f.subs[r.URL.Query().Get("topic")]))
	for c := range f.subs[r.URL.Query().Get("topic")] {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		if c.Write(ctx, websocket.MessageText, body) != nil {
			c.CloseNow() // a stuck or gone subscriber; its reader unregisters it
		}
		cancel()
	}
	fmt.Fprintf(w, "%d\n", len(conns))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address (host:port; port 0 picks one)")
	flag.Parse()
	f := &floor{subs: map[string]map[*websocket.Conn]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", f.serveWS)
	mux.HandleFunc("/publish", f.publish)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("floor listening on %s\n", ln.Addr()) // the first line of output, read by tests
	log.Fatal(http.Serve(ln, mux))
}
