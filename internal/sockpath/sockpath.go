// Package sockpath decides whether a Unix socket's path may be bound: it
// may if nothing is there, or if a socket is there that nobody listens on
// any more (a process that died, kill -9, leaves its path behind). Any
// other file, and a socket that answers, belong to someone else.
package sockpath

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrInUse means a process listens on the path.
var ErrInUse = errors.New("a process listens on it")

// ErrNotSocket means the path is a file of another kind.
var ErrNotSocket = errors.New("it exists and is not a socket")

// dialTimeout bounds the dial that asks whether a socket answers; a
// listener whose backlog is full takes it as long to refuse.
const dialTimeout = time.Second

// Claim readies path for a bind: nothing to do if it does not exist; a
// socket nobody listens on is removed. It refuses, naming the path, a
// file that is not a socket (ErrNotSocket) and a socket that answers a
// dial of network ("unix" or "unixpacket"; ErrInUse), a socket of the
// other type included. Between Claim and the bind another process can
// still take the path; the bind then fails as it would have.
func Claim(path, network string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !isSocketMode(st):
		return fmt.Errorf("%s: %w", path, ErrNotSocket)
	}
	c, err := net.DialTimeout(network, path, dialTimeout)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("%s: %w", path, ErrInUse)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Bound, but nobody listens: left behind.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case errors.Is(err, syscall.ENOENT):
		return nil // removed meanwhile
	case errors.Is(err, syscall.EPROTOTYPE):
		return fmt.Errorf("%s: %w (a socket of another type)", path, ErrInUse)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// IsSocket reports whether path is a socket file (a connect to another
// kind of file is refused as one to a socket nobody listens on is).
func IsSocket(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && isSocketMode(st)
}

func isSocketMode(st fs.FileInfo) bool { return st.Mode().Type() == fs.ModeSocket }
