package hvsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

var (
	// ErrRefused: nothing listens on the service (the guest's connect was
	// refused). It matches syscall.ECONNREFUSED with errors.Is.
	ErrRefused = fmt.Errorf("hvsock: %w", syscall.ECONNREFUSED)
	// ErrLimit: a connection was refused because a limit was reached.
	ErrLimit = errors.New("hvsock: connection limit reached")
	// ErrNotOpened: the peer did not open the connection's channel in
	// time.
	ErrNotOpened = errors.New("hvsock: channel not opened in time")
	// ErrReset: the peer took the connection down before it ended in an
	// orderly way (a rescind before both directions ended, or a guest
	// that closed or went away).
	ErrReset = fmt.Errorf("hvsock: connection reset: %w", syscall.ECONNRESET)
)

// opError wraps err as the standard library's connections do: a
// *net.OpError, which is a net.Error whose Timeout follows err. A
// context's deadline becomes os.ErrDeadlineExceeded, as net.Dial reports
// a timeout.
func opError(op string, local, remote net.Addr, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = os.ErrDeadlineExceeded
	}
	return &net.OpError{Op: op, Net: Network, Source: local, Addr: remote, Err: err}
}
