//go:build linux

package switchboard

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// idlePoller watches the sockets of idle connections with one epoll instance of its own, so
// that an idle connection has no goroutine at all: a goroutine costs at least a 2 KiB stack
// and its descriptor, a quarter of what an idle connection cost with one. The poller's one
// goroutine waits for the instance in Go's network poller (an epoll descriptor is itself
// pollable), so it holds no thread while nothing happens and Shutdown stops it by closing
// the descriptor.
//
// A connection is armed with EPOLLONESHOT: its first event disarms it, and the poller starts
// the connection's reader goroutine. When the reader has drained the socket it arms the
// connection again and exits. epoll_ctl checks readiness when it arms (level-triggered), so
// data that arrived between the reader's last look and the re-arm raises an event at once.
//
// Events name the connection by a slot index and the slot's generation, never by descriptor
// or pointer: a descriptor number is reused as soon as it is closed, and the kernel keeps no
// reference the garbage collector could see. A slot is held from the connection's first
// arming to its end, and its generation changes when it is released, so an event that was
// already on its way when the connection ended is recognised and dropped.
type idlePoller struct {
	file *os.File        // the epoll instance
	rc   syscall.RawConn // file's descriptor, held open while in use
	done chan struct{}

	dead atomic.Bool // the wait loop has ended: arm refuses, connections keep a goroutine

	mu    sync.Mutex
	slots []idleSlot
	free  []uint32 // released slots, reused first
	used  int      // slots held by connections
}

type idleSlot struct {
	c   *Conn
	gen uint32
}

// idleEvents is what an idle connection is woken for: data (or a FIN) to read, the peer
// shutting down its side, and errors (EPOLLERR and EPOLLHUP are always reported).
const idleEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newIdlePoller creates the epoll instance and starts its goroutine. It fails when the
// instance cannot be created or cannot be waited on in Go's network poller; the caller then
// keeps a goroutine per connection.
func newIdlePoller() (*idlePoller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "switchboard-idle-epoll")
	// A deadline can only be set on a descriptor registered with the network poller: this
	// tells whether waiting on the instance will park the goroutine rather than fail.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &idlePoller{file: f, rc: rc, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// arm registers c's socket for one readiness event. The caller holds c.mu and has marked c
// parked; an event may arrive (and wait for c.mu) before arm returns.
func (p *idlePoller) arm(c *Conn) error {
	if p.dead.Load() {
		return errIdlePollerStopped
	}
	first := c.pslot == 0
	if first {
		if err := p.acquire(c); err != nil {
			return err
		}
	}
	op := syscall.EPOLL_CTL_MOD
	if first {
		op = syscall.EPOLL_CTL_ADD
	}
	ev := syscall.EpollEvent{Events: idleEvents, Fd: int32(c.pslot - 1), Pad: int32(c.pgen)}
	var err error
	// Both descriptors are held open during the call, so neither number can have been
	// closed and reused for something else meanwhile.
	perr := p.rc.Control(func(epfd uintptr) {
		cerr := c.raw.Control(func(fd uintptr) {
			err = syscall.EpollCtl(int(epfd), op, int(fd), &ev)
		})
		if err == nil {
			err = cerr
		}
	})
	if err == nil {
		err = perr
	}
	return err
}

// acquire gives c a slot.
func (p *idlePoller) acquire(c *Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead.Load() {
		return errIdlePollerStopped
	}
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		p.slots = append(p.slots, idleSlot{})
		i = uint32(len(p.slots) - 1)
	}
	p.slots[i].c = c
	p.used++
	c.pslot, c.pgen = i+1, p.slots[i].gen
	return nil
}

// release frees c's slot, if it has one, when the connection has ended. The socket is
// closed or about to be, which takes it out of the epoll instance; the new generation
// turns any event still on its way into a stale one.
func (p *idlePoller) release(c *Conn) {
	c.mu.Lock()
	slot := c.pslot
	c.pslot = 0
	c.mu.Unlock()
	if slot == 0 {
		return
	}
	p.mu.Lock()
	s := &p.slots[slot-1]
	s.c = nil
	s.gen++
	p.free = append(p.free, slot-1)
	p.used--
	p.mu.Unlock()
}

// registered returns how many connections hold a slot (parked or being read).
func (p *idlePoller) registered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

// close stops the poller and waits for its goroutine. Shutdown calls it once every
// connection has ended.
func (p *idlePoller) close() {
	p.file.Close()
	<-p.done
}

// run waits for events and starts the reader of each connection they name.
func (p *idlePoller) run() {
	defer close(p.done)
	defer p.stop()
	var events [128]syscall.EpollEvent
	var woken [len(events)]*Conn
	for {
		n := 0
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			n, werr = syscall.EpollWait(int(fd), events[:], 0)
			if werr == syscall.EINTR {
				n, werr = 0, nil
			}
			return n > 0 || werr != nil // nothing ready: park until the instance is readable
		})
		if err != nil || werr != nil {
			return // closed by close, or broken
		}
		p.mu.Lock()
		k := 0
		for _, ev := range events[:n] {
			i := uint32(ev.Fd)
			if int(i) < len(p.slots) && p.slots[i].gen == uint32(ev.Pad) && p.slots[i].c != nil {
				woken[k] = p.slots[i].c
				k++
			}
		}
		p.mu.Unlock()
		for j, c := range woken[:k] {
			c.wake()
			woken[j] = nil
		}
	}
}

// stop marks the poller dead and wakes every parked connection, so that none is left
// waiting on an instance nobody watches. After Shutdown there are none; this matters only
// if waiting failed. A connection arming at the same time holds a slot, so it is woken once
// its arm is done (wake waits for its lock).
func (p *idlePoller) stop() {
	p.mu.Lock()
	p.dead.Store(true)
	var parked []*Conn
	for _, s := range p.slots {
		if s.c != nil {
			parked = append(parked, s.c)
		}
	}
	p.mu.Unlock()
	for _, c := range parked {
		c.wake()
	}
}

var errIdlePollerStopped = errors.New("switchboard: idle poller stopped")
