package switchboard

import (
	"bufio"
	"net"
	"net/http"
	"syscall"
	"unsafe"
)

// Idle connections are most of a realtime server's connections, so what one costs while it
// waits is what decides how many a machine holds. Two things make it cheap here:
//
//   - leanWriter hands the WebSocket library small read and write buffers when net/http's
//     connection is hijacked, instead of net/http's 4 KiB reader and 4 KiB writer that would
//     otherwise stay with the connection for its whole life;
//   - the read loop waits for the socket to become readable in a shallow call chain (a
//     MSG_PEEK poll that consumes nothing) before it enters the library's reader, whose deeper
//     stack would otherwise stay grown while the connection is idle.
//
// docs/benchmarks.md has the figures.

// leanWriter wraps the upgrade's ResponseWriter so that Hijack returns small buffers. It does
// so only when net/http has nothing buffered from the client yet; otherwise the original
// buffers are kept, since they hold the client's first bytes.
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
	w.c.nc = conn
	if brw.Reader.Buffered() > 0 || brw.Writer.Buffered() > 0 {
		return conn, brw, nil
	}
	br := bufio.NewReaderSize(conn, w.rsize)
	w.c.cork.conn = conn
	bw := bufio.NewWriterSize(&w.c.cork, w.wsize)
	w.c.br = br
	if sc, ok := conn.(*net.TCPConn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.c.raw = raw
		}
	}
	return conn, bufio.NewReadWriter(br, bw), nil
}

// waitReadable blocks until the client has sent something, without reading it. It returns
// at once when the connection's buffer already holds data, when it is closing (the close
// handshake reads the buffer from another goroutine, so the buffer is not touched then) or
// when the socket does not support the poll.
func (c *Conn) waitReadable() {
	if c.raw == nil {
		return
	}
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

// peekReady reports whether the socket fd has something to read (or has failed), without
// consuming it. Returning false parks the caller in the network poller until it may have.
func peekReady(fd uintptr) bool {
	var b [1]byte
	// recvfrom(2) without an address: syscall.Recvfrom would allocate one on every call.
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EINTR
}
