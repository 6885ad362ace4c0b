package transport

import (
	"fmt"
	"net"
	"os"

	"github.com/govmbus/govmbus/internal/sockpath"
)

// Listener accepts guests on a Unix socket path, as the host.
//
// Accept may be called from several goroutines; each accepted Conn is
// independent of the others and of the Listener (closing the Listener
// leaves accepted connections up). Close unblocks Accept.
type Listener struct {
	ul *net.UnixListener
}

// Listen listens for guests at path, a SOCK_SEQPACKET Unix socket. The
// path is removed again by Close (unless File was called). A socket left
// at path by a host that died (nobody listens on it) is replaced; a path
// where a process listens, or that is not a socket, is refused.
func Listen(path string) (*Listener, error) {
	if err := sockpath.Claim(path, "unixpacket"); err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	ul, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", path, err)
	}
	return &Listener{ul: ul}, nil
}

// ListenerFromFile rebuilds a Listener from a socket inherited from a
// predecessor (see File). It duplicates f; the caller still owns f.
func ListenerFromFile(f *os.File) (*Listener, error) {
	nl, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	ul, ok := nl.(*net.UnixListener)
	if !ok {
		nl.Close()
		return nil, fmt.Errorf("transport: inherited listener is a %T, not a Unix socket", nl)
	}
	if err := checkSeqpacket(ul); err != nil {
		ul.Close()
		return nil, err
	}
	return &Listener{ul: ul}, nil
}

// Accept waits for the next guest and returns its connection as the host.
// It does not wait for the guest's hello (the first Recv checks it), so a
// guest that connects and stays silent holds up only its own connection.
// After Close it returns ErrClosed.
func (l *Listener) Accept() (*Conn, error) {
	for {
		uc, err := l.ul.AcceptUnix()
		if err != nil {
			return nil, mapNetErr(err)
		}
		c := newConn(uc, Host, false)
		if err := c.sendHello(); err != nil {
			// That guest is already gone; it is not the listener's
			// failure, so wait for the next one.
			c.Close()
			continue
		}
		return c, nil
	}
}

// Addr is the socket path.
func (l *Listener) Addr() string { return l.ul.Addr().String() }

// File returns a duplicate of the listening socket for a successor
// process; the caller owns it. From then on Close leaves the socket path
// in place, since the successor still listens on it.
func (l *Listener) File() (*os.File, error) {
	l.ul.SetUnlinkOnClose(false)
	f, err := l.ul.File()
	if err != nil {
		return nil, mapNetErr(err)
	}
	return f, nil
}

// Close stops listening and unblocks Accept. It is idempotent.
func (l *Listener) Close() error {
	if err := l.ul.Close(); err != nil && mapNetErr(err) != ErrClosed {
		return err
	}
	return nil
}
