package main

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h). With it, binding a socket
// to a source address defers the choice of the source port to connect, which then picks
// a port free for the whole 4-tuple instead of one free for the source address alone:
// each source address then reaches the ephemeral-port range once per server port.
const ipBindAddressNoPort = 24

// bindNoPort is a net.Dialer Control function setting IP_BIND_ADDRESS_NO_PORT. Failure is
// not an error: the dial still works, with ports chosen at bind time.
func bindNoPort(network, address string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
}
