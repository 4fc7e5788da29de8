package switchboard

import (
	"bufio"
	"sync"
)

// A connection's read buffer is needed only while its reader runs: when the reader hands an
// idle connection over (rest), the buffer is empty, and nobody reads the socket until the
// connection wakes. So the buffer is lent: an idle connection keeps the smallest buffer
// bufio allows, and a reader borrows a full one from a pool of the manager's for as long as
// it runs. The WebSocket library holds the connection's *bufio.Reader, so the buffers are
// exchanged by swapping the contents of that Reader with those of a pooled one.
//
// The swaps happen under Conn.mu and only while no close has been requested: once it has,
// the close handshake may read the buffer from another goroutine, and the connection keeps
// whatever buffer it has. A small buffer is slower, never wrong.

// idleReadBufferSize is bufio's minimum.
const idleReadBufferSize = 16

var idleReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, idleReadBufferSize) }}

// borrowReadBuffer gives the connection a full read buffer if it has the idle one. The
// caller holds c.mu and is about to start the reader.
func (c *Conn) borrowReadBuffer() {
	if c.closeReq || c.br.Size() >= c.m.cfg.ReadBufferSize || c.br.Buffered() > 0 {
		return
	}
	r, _ := c.m.readers.Get().(*bufio.Reader)
	if r == nil {
		r = bufio.NewReaderSize(nil, c.m.cfg.ReadBufferSize)
	}
	c.swapReader(r, &idleReaders)
}

// returnReadBuffer gives the full read buffer back to the pool and leaves the connection
// the idle one. The caller holds c.mu, has checked that the buffer is empty and is about to
// hand the connection over.
func (c *Conn) returnReadBuffer() {
	if c.closeReq || c.br.Size() <= idleReadBufferSize || c.br.Buffered() > 0 {
		return
	}
	pool := &c.m.readers
	if c.br.Size() != c.m.cfg.ReadBufferSize {
		pool = nil // a larger one, made for bytes read ahead at the upgrade
	}
	c.swapReader(idleReaders.Get().(*bufio.Reader), pool)
}

// swapReader exchanges the contents of the connection's Reader and r, which then goes to
// pool (if not nil) without any reference to the socket.
func (c *Conn) swapReader(r *bufio.Reader, pool *sync.Pool) {
	r.Reset(c.sock.Conn)
	*c.br, *r = *r, *c.br
	if pool != nil {
		r.Reset(nil)
		pool.Put(r)
	}
}
