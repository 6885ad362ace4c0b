package hvsock

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/pipe"
)

// Conn is one Hyper-V socket connection, on either end: a net.Conn over
// the byte-mode pipe of its VMBus channel.
//
// Errors are *net.OpError values, as the standard library's connections
// return: a deadline's satisfies errors.Is(err, os.ErrDeadlineExceeded)
// and is a net.Error whose Timeout is true; after Close the calls fail
// with net.ErrClosed; Read returns io.EOF, unwrapped, after the peer's
// FIN.
type Conn struct {
	s             stream
	local, remote Addr
	// teardown takes the connection's channel down: on the host it
	// rescinds the offer, on the guest it waits for that rescind (up to
	// the close timeout) and closes the channel. It runs once, from Close
	// or once both directions ended; wait says whether Close waits for it.
	teardown func()
	waitDown bool
	spawn    func(func()) // runs the teardown on a goroutine its owner waits for
	// hostPeer: the guest's end, whose peer is the host: what the host
	// breaks (the pipe framing) is reported as its fault, guest.ErrProtocol.
	hostPeer bool
	host     *hostEnd // the host's end, for a servicing; nil on a guest

	mu       sync.Mutex
	closed   bool
	finSent  bool
	eof      bool
	downOnce sync.Once
	down     chan struct{} // closed when teardown returned
}

func newConn(s stream, local, remote Addr, teardown func(), waitDown bool, spawn func(func())) *Conn {
	return &Conn{s: s, local: local, remote: remote, teardown: teardown, waitDown: waitDown, spawn: spawn, down: make(chan struct{})}
}

// LocalAddr is this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Read reads what the peer sent; io.EOF once the peer half-closed (its
// FIN) and everything before it was read.
func (c *Conn) Read(b []byte) (int, error) {
	if c.isClosed() {
		return 0, opError("read", c.local, c.remote, net.ErrClosed)
	}
	n, err := c.s.Read(b)
	if err == io.EOF {
		c.mu.Lock()
		c.eof = true
		both := c.finSent
		c.mu.Unlock()
		if both {
			c.goDown()
		}
		return n, io.EOF
	}
	if err == nil {
		// Not through opError: its arguments would box the addresses,
		// an allocation per Read.
		return n, nil
	}
	if c.isClosed() {
		err = net.ErrClosed
	} else if c.hostPeer && errors.Is(err, pipe.ErrMalformed) {
		err = fmt.Errorf("%w: %w", guest.ErrProtocol, err)
	}
	return n, opError("read", c.local, c.remote, err)
}

// Write sends b, waiting for ring space as the peer reads.
func (c *Conn) Write(b []byte) (int, error) {
	if c.isClosed() {
		return 0, opError("write", c.local, c.remote, net.ErrClosed)
	}
	n, err := c.s.Write(b)
	if err == nil {
		return n, nil
	}
	if c.isClosed() {
		err = net.ErrClosed
	}
	return n, opError("write", c.local, c.remote, err)
}

// CloseWrite ends this direction (the FIN); reading goes on. The host
// takes the channel down once both directions ended.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return opError("close", c.local, c.remote, net.ErrClosed)
	}
	c.mu.Unlock()
	err := c.s.CloseWrite()
	c.mu.Lock()
	c.finSent = err == nil || c.finSent
	both := c.finSent && c.eof
	c.mu.Unlock()
	if both {
		c.goDown()
	}
	return opError("close", c.local, c.remote, err)
}

// Close ends the connection: the FIN if not sent, then the channel goes
// down (see the package doc). Blocked Reads and Writes return
// net.ErrClosed. A second Close returns net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return opError("close", c.local, c.remote, net.ErrClosed)
	}
	c.closed = true
	c.mu.Unlock()
	err := c.s.Close()
	c.goDown()
	if c.waitDown {
		<-c.down
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return opError("close", c.local, c.remote, err)
}

// goDown starts the teardown once.
func (c *Conn) goDown() {
	c.downOnce.Do(func() {
		c.spawn(func() {
			defer close(c.down)
			c.teardown()
		})
	})
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds Read: past t it fails with
// os.ErrDeadlineExceeded; the zero time removes the bound.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return opError("set", c.local, c.remote, net.ErrClosed)
	}
	return opError("set", c.local, c.remote, c.s.SetReadDeadline(t))
}

// SetWriteDeadline bounds Write as SetReadDeadline bounds Read.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return opError("set", c.local, c.remote, net.ErrClosed)
	}
	return opError("set", c.local, c.remote, c.s.SetWriteDeadline(t))
}

var _ net.Conn = (*Conn)(nil)
