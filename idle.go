package switchboard

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Idle connections are most of a realtime server's connections, so what one costs while it
// waits is what decides how many a machine holds. Three things make it cheap here:
//
//   - leanWriter hands the WebSocket library small read and write buffers when net/http's
//     connection is hijacked, instead of net/http's 4 KiB reader and 4 KiB writer that would
//     otherwise stay with the connection for its whole life;
//   - the read side has a goroutine only while there is something to read. A reader that has
//     drained the socket hands the connection to the manager's idle poller (idlepoll_linux.go:
//     one epoll instance and one goroutine for all idle connections) and exits; the poller
//     starts a fresh reader when the client sends something. So an idle connection keeps no
//     stack at all, however deep its last message's handling went;
//   - where there is no idle poller (not Linux, or epoll unavailable), the idle connection
//     waits in a fresh goroutine that only polls the socket with MSG_PEEK, a shallow call
//     chain that never grows its stack past the minimum.
//
// Connections without a pollable socket (TLS terminated by this process) keep one reading
// goroutine for their life.
// docs/benchmarks.md has the figures.

// leanWriter wraps the upgrade's ResponseWriter so that Hijack returns small buffers.
type leanWriter struct {
	http.ResponseWriter
	c            *Conn
	rsize, wsize int
}

// Unwrap lets http.ResponseController and the WebSocket library see the wrapped writer.
func (w *leanWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack implements http.Hijacker.
func (w *leanWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	c := w.c
	c.sock = sockConn{Conn: conn, c: c}
	if brw.Writer.Buffered() > 0 { // not done by net/http today; keep its buffers if it starts
		return conn, brw, nil
	}
	if sc, ok := conn.(*net.TCPConn); ok && canPeek {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	rsize := w.rsize
	if c.raw != nil {
		rsize = idleReadBufferSize // the reader borrows a full one (readbuf.go)
	}
	var src io.Reader = conn
	pending := brw.Reader.Buffered()
	if pending > 0 {
		// net/http has read ahead: the 101 response goes out before the hijack, and a client
		// that sends its first frame at once may have it read (often just its first byte).
		// Those bytes go in front of the socket, in a buffer that holds them all: the library
		// takes over whatever the returned reader has buffered.
		b, _ := brw.Reader.Peek(pending)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
		rsize = max(w.rsize, pending)
		c.prefixed = true
	}
	br := bufio.NewReaderSize(src, rsize)
	if pending > 0 {
		_, _ = br.Peek(pending)
	}
	c.cork.conn = conn
	bw := bufio.NewWriterSize(&c.cork, w.wsize)
	c.br = br
	// The library closes the socket through sockConn, which wakes a parked read side.
	return &c.sock, bufio.NewReadWriter(br, bw), nil
}

// sockConn is the socket as the WebSocket library sees it. Whoever closes it (the library
// after a close handshake or a failed write, or closeTransport) also wakes the connection's
// read side if it is parked in the idle poller: closing a descriptor silently takes it out of
// an epoll instance, so without this a parked connection would never learn that it ended.
type sockConn struct {
	net.Conn
	c *Conn
}

// Close closes the socket, then starts the reader of a parked connection, which sees the
// closed socket and ends the connection.
func (s *sockConn) Close() error {
	err := s.Conn.Close()
	s.c.wake()
	return err
}

// startReading starts the read side of a new connection: parked if it can be, otherwise a
// goroutine. The manager's WaitGroup counts the read side once, from the upgrade to finish,
// whether it is parked, waiting or reading.
func (c *Conn) startReading() {
	if c.raw == nil {
		go c.readMessages()
		return
	}
	if c.prefixed {
		// The client's first bytes are waiting in front of the socket, where neither a
		// MSG_PEEK nor the poller sees them: read them first.
		go c.readMessages()
		return
	}
	c.mu.Lock()
	if !c.closeReq {
		// Nothing has been read yet. The library has put a reader of what net/http had
		// buffered (nothing) in front of the socket; reading the socket directly lets that
		// go.
		c.br.Reset(c.sock.Conn)
	}
	c.mu.Unlock()
	if !c.rest() {
		c.mu.Lock()
		c.borrowReadBuffer()
		c.mu.Unlock()
		go c.readMessages()
	}
}

// rest hands the read side of an idle connection over, so that the calling reader can exit:
// to the idle poller when there is one, otherwise to a waiter goroutine. It returns false
// when the connection must go on being read by the caller: a close is under way (the close
// handshake reads from another goroutine, and the caller must see it end).
func (c *Conn) rest() bool {
	p := c.m.idlePoller()
	c.mu.Lock()
	if c.closeReq {
		c.mu.Unlock()
		return false
	}
	c.returnReadBuffer()
	if p == nil {
		c.mu.Unlock()
		go c.waitThenRead()
		return true
	}
	c.parked = true
	err := p.arm(c)
	if err != nil {
		c.parked = false
	}
	c.mu.Unlock()
	if err != nil {
		// Out of epoll watches, or the socket has just been closed: a waiter goroutine
		// covers both (it sees a closed socket at once).
		c.m.cfg.Logger.Debug("switchboard: idle poller refused a connection", "client", c.id, "err", err)
		go c.waitThenRead()
	}
	return true
}

// wake starts the reader of a parked connection. The idle poller calls it when the socket is
// readable, sockConn when it has been closed; only the first of several calls does anything.
func (c *Conn) wake() {
	c.mu.Lock()
	parked := c.parked
	if parked {
		c.parked = false
		c.borrowReadBuffer()
	}
	c.mu.Unlock()
	if parked {
		go c.readMessages()
	}
}

// waitThenRead is the read side of an idle connection where there is no idle poller: a
// goroutine that waits for the socket to become readable in a shallow call chain, then
// starts a fresh reader.
func (c *Conn) waitThenRead() {
	c.waitReadable()
	c.mu.Lock()
	c.borrowReadBuffer()
	c.mu.Unlock()
	go c.readMessages()
}

// waitReadable blocks until the client has sent something, without reading it. It returns
// at once when the connection's buffer already holds data, when it is closing (the close
// handshake reads the buffer from another goroutine, so the buffer is not touched then) or
// when the socket does not support the poll.
func (c *Conn) waitReadable() {
	c.mu.Lock()
	skip := c.closeReq || c.br.Buffered() > 0
	c.mu.Unlock()
	if skip {
		return
	}
	_ = c.raw.Read(peekReady)
}

// idle reports whether nothing is waiting to be read: the buffer is empty and so is the
// socket. It never blocks. While a close is under way it reports false, so the busy reader
// keeps reading (the close handshake needs it) and the buffer is left alone.
func (c *Conn) idle() bool {
	c.mu.Lock()
	busy := c.closeReq || c.br.Buffered() > 0
	c.mu.Unlock()
	if busy {
		return false
	}
	ready := true
	if err := c.raw.Control(func(fd uintptr) { ready = peekReady(fd) }); err != nil {
		return false
	}
	return !ready
}

// idlePoller returns the manager's idle poller, starting it on first use, or nil when there
// is none (not Linux, epoll unavailable, or the manager has shut down).
func (m *Manager) idlePoller() *idlePoller {
	m.idleOnce.Do(func() {
		p, err := newIdlePoller()
		if err != nil {
			m.cfg.Logger.Debug("switchboard: no idle poller; idle connections keep a goroutine", "err", err)
			return
		}
		m.idle = p
	})
	return m.idle
}

// stopIdlePoller stops the idle poller once every connection has ended, and makes sure
// none starts afterwards.
func (m *Manager) stopIdlePoller() {
	m.idleOnce.Do(func() {})
	if m.idle != nil {
		m.idle.close()
	}
}

// releaseIdle gives up the connection's slot in the idle poller when it ends.
func (c *Conn) releaseIdle() {
	if c.raw == nil {
		return
	}
	if p := c.m.idlePoller(); p != nil {
		p.release(c)
	}
}
