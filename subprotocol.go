package switchboard

import (
	"bytes"
	"sync"

	"github.com/coder/websocket"
)

// WebSocket subprotocols (Sec-WebSocket-Protocol) of the default endpoint. A client that asks
// for none gets SubprotocolV1's behaviour.
const (
	// SubprotocolV1 is wire protocol v1: one JSON envelope per text frame.
	SubprotocolV1 = "switchboard.v1"
	// SubprotocolV1Batch is the same envelopes, several per text frame separated by "\n",
	// when several are queued for the client at once. Clients may send batches too.
	SubprotocolV1Batch = "switchboard.v1.batch"
)

// CompressionMode selects permessage-deflate (RFC 7692) for the clients that offer it.
type CompressionMode int

// Compression modes.
const (
	// CompressionOff never compresses (the default).
	CompressionOff CompressionMode = iota
	// CompressionNoContextTakeover compresses each message on its own: a few hundred bytes
	// of state while a message is written, nothing kept between messages.
	CompressionNoContextTakeover
	// CompressionContextTakeover keeps a 32 KiB window per connection and direction,
	// compressing similar successive messages much better at a memory cost per connection.
	CompressionContextTakeover
)

func (m CompressionMode) library() websocket.CompressionMode {
	switch m {
	case CompressionNoContextTakeover:
		return websocket.CompressionNoContextTakeover
	case CompressionContextTakeover:
		return websocket.CompressionContextTakeover
	}
	return websocket.CompressionDisabled
}

// Subprotocol returns the WebSocket subprotocol negotiated at the handshake, or "" when the
// client asked for none (it then gets SubprotocolV1's behaviour on the default endpoint).
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// Batching reports whether the connection receives several messages per frame.
func (c *Conn) Batching() bool { return c.batch }

// SubprotocolCounts returns how many connections negotiated each subprotocol ("" for none).
// It walks every connection: meant for metrics scrapes.
func (m *Manager) SubprotocolCounts() map[string]int {
	out := make(map[string]int, 2)
	m.reg.forEachConn(func(c *Conn) {
		if c.ws != nil {
			out[c.ws.Subprotocol()]++
		}
	})
	return out
}

var batchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// writeBatched writes frames to a batching client: runs of frames that fit the batch
// limits are joined with "\n" into one frame; a frame alone, or one holding a newline of
// its own (a hand-made payload that was not compact), goes out as it is.
func (c *Conn) writeBatched(typ websocket.MessageType, frames [][]byte) error {
	maxMsgs, maxBytes := c.m.cfg.BatchMaxMessages, c.m.cfg.BatchMaxBytes
	for i := 0; i < len(frames); {
		j := i + 1
		if bytes.IndexByte(frames[i], '\n') < 0 {
			size := len(frames[i])
			for j < len(frames) && j-i < maxMsgs && size+1+len(frames[j]) <= maxBytes &&
				bytes.IndexByte(frames[j], '\n') < 0 {
				size += 1 + len(frames[j])
				j++
			}
		}
		var err error
		if j-i == 1 {
			err = c.ws.Write(background, typ, frames[i])
		} else {
			buf := batchPool.Get().(*[]byte)
			b := (*buf)[:0]
			for k := i; k < j; k++ {
				if k > i {
					b = append(b, '\n')
				}
				b = append(b, frames[k]...)
			}
			err = c.ws.Write(background, typ, b)
			if cap(b) <= 256<<10 {
				*buf = b[:0]
				batchPool.Put(buf)
			}
		}
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}
