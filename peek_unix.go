//go:build unix

package switchboard

import (
	"syscall"
	"unsafe"
)

// canPeek says whether peekReady works here; without it every connection keeps one reading
// goroutine for its whole life.
const canPeek = true

// peekReady reports whether the socket fd has something to read (or has failed), without
// consuming it. Returning false parks the caller in the network poller until it may have.
func peekReady(fd uintptr) bool {
	var b [1]byte
	// recvfrom(2) without an address: syscall.Recvfrom would allocate one on every call.
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EINTR
}
