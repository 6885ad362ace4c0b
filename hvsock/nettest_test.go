package hvsock

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
)

// TestNetConn runs golang.org/x/net/nettest's conformance suite for
// net.Conn on a guest connection and the host's end of it (either way
// round): basic I/O, ping-pong, racy reads and writes, read and write
// timeouts (past, present, future, at Close), and every method called
// concurrently — what a program that takes any net.Conn relies on.
func TestNetConn(t *testing.T) {
	for _, guestFirst := range []bool{true, false} {
		name := "host-guest"
		if guestFirst {
			name = "guest-host"
		}
		t.Run(name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				r := newRig(t, Config{}, host.Limits{}, guest.Config{})
				gc, hc := pair(t, r)
				stop = func() {
					// The host's end first: a guest's Close waits (up to
					// CloseTimeout) for the host to read what it sent,
					// and the host's rescind ends that wait.
					hc.Close()
					gc.Close()
				}
				if guestFirst {
					return gc, hc, stop, nil
				}
				return hc, gc, stop, nil
			})
		})
	}
}
