//go:build !linux

package switchboard

import "errors"

// idlePoller is Linux only (epoll). Elsewhere every connection keeps a waiting goroutine
// while it is idle (idle.go).
type idlePoller struct{}

func newIdlePoller() (*idlePoller, error) { return nil, errors.ErrUnsupported }

func (p *idlePoller) arm(*Conn) error { return errors.ErrUnsupported }
func (p *idlePoller) release(*Conn)   {}
func (p *idlePoller) registered() int { return 0 }
func (p *idlePoller) close()          {}
