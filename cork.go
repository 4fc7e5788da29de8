package switchboard

import (
	"net"
	"sync"
)

// corkWriter sits between the WebSocket library's write buffer and the socket. The library
// flushes every message with its own write system call; while the connection's writer
// drains a batch of queued messages, the corkWriter is corked instead, and the frames —
// still one message per frame on the wire — pile up in one buffer that goes out in a single
// write when the batch ends. So a client that has fallen a few messages behind costs one
// system call, not one per message, and an idle connection holds no buffer at all (corked
// buffers come from a pool).
type corkWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	corked bool
	buf    *[]byte
}

const (
	corkFlushAt = 64 << 10 // flush early past this many buffered bytes
	corkInitial = 8 << 10
)

var corkPool = sync.Pool{New: func() any {
	b := make([]byte, 0, corkInitial)
	return &b
}}

// Write implements io.Writer for the library's bufio.Writer.
func (w *corkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		return w.conn.Write(p)
	}
	if w.buf == nil {
		w.buf = corkPool.Get().(*[]byte)
	}
	if len(*w.buf)+len(p) > corkFlushAt {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= corkFlushAt {
			return w.conn.Write(p)
		}
	}
	*w.buf = append(*w.buf, p...)
	return len(p), nil
}

// cork starts gathering writes.
func (w *corkWriter) cork() {
	w.mu.Lock()
	w.corked = true
	w.mu.Unlock()
}

// uncork writes what was gathered, in one system call, and returns the buffer to the pool.
func (w *corkWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked = false
	err := w.flushLocked()
	if w.buf != nil {
		if cap(*w.buf) <= 2*corkFlushAt {
			corkPool.Put(w.buf)
		}
		w.buf = nil
	}
	return err
}

func (w *corkWriter) flushLocked() error {
	if w.buf == nil || len(*w.buf) == 0 {
		return nil
	}
	_, err := w.conn.Write(*w.buf)
	*w.buf = (*w.buf)[:0]
	return err
}
