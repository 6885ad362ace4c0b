package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// oobSpace holds recvFDSlots descriptors: more than any frame may carry,
// so an excess shows up (and is closed) instead of only truncating.
var oobSpace = unix.CmsgSpace(recvFDSlots * 4)

// Dial connects to a host listening at path, as the guest, and waits (at
// most until ctx ends) for the host's hello.
func Dial(ctx context.Context, path string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", path, err)
	}
	c := newConn(nc.(*net.UnixConn), Guest, false)
	if err := c.sendHello(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.awaitHello(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Pipe returns the two ends of a connection within this process, over a
// socketpair: the same frames, descriptors and checks as between two
// processes. Each end checks the other's hello in its first Recv.
func Pipe() (host, guest *Conn, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: socketpair: %w", err)
	}
	var ucs [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "transport-pipe")
		nc, ferr := net.FileConn(f)
		f.Close()
		if ferr != nil {
			err = fmt.Errorf("transport: %w", ferr)
			continue
		}
		ucs[i] = nc.(*net.UnixConn)
	}
	if err != nil {
		for _, uc := range ucs {
			if uc != nil {
				uc.Close()
			}
		}
		return nil, nil, err
	}
	host, guest = newConn(ucs[0], Host, false), newConn(ucs[1], Guest, false)
	if err := errors.Join(host.sendHello(), guest.sendHello()); err != nil {
		host.Close()
		guest.Close()
		return nil, nil, err
	}
	return host, guest, nil
}

// FromFile rebuilds an established connection from a socket inherited
// from a predecessor process (see File). It duplicates f; the caller still
// owns f. The hello exchange is not repeated: it happened before the
// handover. role is the side this process speaks for.
func FromFile(f *os.File, role Role) (*Conn, error) {
	return fromFile(f, role, true)
}

// FromFileBeforeHello is FromFile for a connection whose peer's hello
// its predecessor had not received yet (Conn.HelloSeen was false): the
// hello is still in the socket, and the first Recv checks it.
func FromFileBeforeHello(f *os.File, role Role) (*Conn, error) {
	return fromFile(f, role, false)
}

func fromFile(f *os.File, role Role, established bool) (*Conn, error) {
	if role != Host && role != Guest {
		panic(fmt.Sprintf("transport: FromFile with %v", role))
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("transport: inherited descriptor is a %T, not a Unix socket", nc)
	}
	// net.FileConn read the socket's type (SO_TYPE) and named the
	// connection's network after it: "unixpacket" is SOCK_SEQPACKET.
	network := ""
	if a := uc.LocalAddr(); a != nil {
		network = a.Network()
	}
	if network != "unixpacket" {
		uc.Close()
		return nil, fmt.Errorf("transport: inherited socket is %q, need unixpacket (SOCK_SEQPACKET)", network)
	}
	return newConn(uc, role, established), nil
}

// File returns a duplicate of the connection's socket for a successor
// process; the caller owns it. The connection stays up while any
// duplicate is open, so this end may then be closed without the peer
// noticing. Messages and handovers this end's Recv has already read are
// not in the socket any more: the predecessor must stop calling Recv
// before the handover and pass on what it took.
func (c *Conn) File() (*os.File, error) {
	f, err := c.uc.File()
	if err != nil {
		return nil, mapNetErr(err)
	}
	return f, nil
}

// Descriptor is the connection's socket descriptor number, borrowed: it
// stays the Conn's, valid until Close, for handing to a successor process
// by number (servicing.Exec). Unlike File it makes no duplicate and no
// *os.File. The caller must not close it, change its mode or use it after
// Close; what File says about Recv holds too.
func (c *Conn) Descriptor() (int, error) {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return -1, mapNetErr(err)
	}
	fd := -1
	if err := rc.Control(func(n uintptr) { fd = int(n) }); err != nil {
		return -1, mapNetErr(err)
	}
	return fd, nil
}

func checkSeqpacket(sc syscall.Conn) error {
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("transport: socket type: %w", serr)
	}
	if typ != unix.SOCK_SEQPACKET {
		return fmt.Errorf("transport: socket type %d, need SOCK_SEQPACKET", typ)
	}
	return nil
}

// readOne reads one datagram and decodes it. Every descriptor that came
// with it is closed unless it is returned (at most one, for the frame
// kinds that carry one). Must hold readMu.
func (c *Conn) readOne(ctx context.Context) (frame, int, error) {
	n, oobn, flags, err := c.readMsg(ctx)
	// Descriptors are installed even when the datagram is otherwise bad
	// (or empty, which reads as EOF): collect them first, whatever else
	// went wrong.
	fds := receivedFDs(c.oob[:oobn])
	switch {
	case err != nil:
	case flags&unix.MSG_CTRUNC != 0:
		err = frameErr(0, "more than %d descriptors attached", recvFDSlots)
	case flags&unix.MSG_TRUNC != 0 || n > maxFrameSize:
		err = frameErr(c.rbuf[offKind], "datagram longer than %d bytes", maxFrameSize)
	}
	var f frame
	if err == nil {
		f, err = decodeFrame(c.rbuf[:n], len(fds))
	}
	if err != nil {
		for _, fd := range fds {
			closeFD(fd)
		}
		return frame{}, -1, err
	}
	fd := -1
	if len(fds) == 1 {
		fd = fds[0]
	}
	return f, fd, nil
}

// readMsg is a recvmsg that ctx can interrupt.
func (c *Conn) readMsg(ctx context.Context) (n, oobn, flags int, err error) {
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.uc.SetReadDeadline(aLongTimeAgo)
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
				c.uc.SetReadDeadline(time.Time{})
			}
		}()
	}
	n, oobn, flags, _, err = c.uc.ReadMsgUnix(c.rbuf[:], c.oob)
	if errors.Is(err, syscall.ECONNRESET) && oobn == 0 {
		// The peer closed with frames of ours unread. Linux reports that
		// once, ahead of the frames the peer sent before closing, which
		// are still queued: read on, to deliver them and then EOF.
		n, oobn, flags, _, err = c.uc.ReadMsgUnix(c.rbuf[:], c.oob)
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			return n, oobn, flags, ctx.Err()
		}
		return n, oobn, flags, mapNetErr(err)
	}
	return n, oobn, flags, nil
}

// receivedFDs extracts every descriptor from SCM_RIGHTS control messages.
func receivedFDs(oob []byte) []int {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		// The kernel writes well-formed control messages; nothing to
		// recover from a buffer it did not.
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// write sends frame b as one datagram, with descriptor fd if fd >= 0,
// waiting for room at most the send timeout.
//
// Concurrent writes share the socket's one write deadline: each sets it
// to its own start plus the timeout, so a write may wait until the
// timeout of a later one ends. That is still bounded, and the sender of
// a control plane that times out disconnects the peer anyway.
func (c *Conn) write(b []byte, fd int) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if d := time.Duration(c.sendTimeout.Load()); d > 0 {
		if err := c.uc.SetWriteDeadline(time.Now().Add(d)); err != nil {
			return mapNetErr(err)
		}
	}
	if _, _, err := c.uc.WriteMsgUnix(b, oob, nil); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return ErrSendTimeout
		}
		return mapNetErr(err)
	}
	return nil
}

// writeFile sends frame b with f's descriptor, without f.Fd's side effect
// of switching f to blocking mode.
func (c *Conn) writeFile(b []byte, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	var werr error
	if err := rc.Control(func(fd uintptr) { werr = c.write(b, int(fd)) }); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	return werr
}

// mapNetErr turns socket errors into this package's: local close,
// vanished peer, or a wrapped error.
func mapNetErr(err error) error {
	switch {
	case errors.Is(err, net.ErrClosed):
		return ErrClosed
	case errors.Is(err, io.EOF), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return ErrPeerClosed
	}
	return fmt.Errorf("transport: %w", err)
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
