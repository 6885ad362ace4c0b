package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Event is one direction of a channel's signalling: an eventfd. One
// process calls Signal, the other Waits; signals that arrive before a Wait
// coalesce into one wake-up, as interrupts do.
//
// Signal is safe for concurrent use. Wait may be called by one goroutine
// at a time. Close may be called at any time, from any goroutine, and
// wakes a blocked Wait.
type Event struct {
	f         *os.File // non-blocking eventfd, registered with the runtime poller
	rbuf      [8]byte  // Wait's read buffer; a field, not a local, so Wait does not allocate
	closeOnce sync.Once
	closeErr  error
}

// one is the eventfd increment. Never written, so concurrent Signals may
// share it.
var one = [8]byte{1}

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// NewEvent creates an eventfd.
func NewEvent() (*Event, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("transport: eventfd: %w", err)
	}
	return &Event{f: os.NewFile(uintptr(fd), "eventfd")}, nil
}

// EventFromFile makes an Event of an eventfd inherited from another
// process (servicing). It duplicates f's descriptor; the caller still owns
// f. A descriptor that is not an eventfd is refused.
func EventFromFile(f *os.File) (*Event, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	nfd := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("transport: dup: %w", dupErr)
	}
	return eventFromFD(nfd)
}

// eventFromFD adopts fd: on error it is closed.
func eventFromFD(fd int) (*Event, error) {
	if err := checkEventFD(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// O_NONBLOCK belongs to the open file, shared with the peer's copy;
	// set it whatever the peer did, or the runtime poller cannot wait on
	// the descriptor and Wait could not be cancelled.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("transport: eventfd: %w", err)
	}
	return &Event{f: os.NewFile(uintptr(fd), "eventfd")}, nil
}

// checkEventFD refuses descriptors that are not eventfds: a pipe or socket
// handed over in its place could block Signal or Wait forever.
func checkEventFD(fd int) error {
	var buf [64]byte
	n, err := unix.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd), buf[:])
	if err != nil {
		return &FrameError{Kind: uint8(kindEvent), Reason: "cannot inspect event descriptor", Err: err}
	}
	if string(buf[:n]) != "anon_inode:[eventfd]" {
		return &FrameError{Kind: uint8(kindEvent), Reason: fmt.Sprintf("event descriptor is %q, not an eventfd", buf[:n])}
	}
	return nil
}

// Signal wakes the other side's Wait.
func (e *Event) Signal() error {
	if _, err := e.f.Write(one[:]); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("transport: signal: %w", err)
	}
	return nil
}

// Wait blocks until the event has been signalled since the last Wait
// returned, ctx is done (ctx.Err()), or the Event is closed (ErrClosed).
// With a context that cannot be cancelled, Wait allocates nothing.
//
// A peer that dies does not wake Wait: the control plane learns of it from
// the Conn (ErrPeerClosed) and closes the channel's Events.
func (e *Event) Wait(ctx context.Context) error {
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			e.f.SetReadDeadline(aLongTimeAgo)
			close(fired)
		})
		defer func() {
			// If the deadline was set, undo it for the next Wait, but only
			// once the function that set it has finished.
			if !stop() {
				<-fired
				e.f.SetReadDeadline(time.Time{})
			}
		}()
	}
	if _, err := e.f.Read(e.rbuf[:]); err != nil {
		switch {
		case errors.Is(err, os.ErrClosed):
			return ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return ctx.Err()
		}
		return fmt.Errorf("transport: wait: %w", err)
	}
	return nil
}

// File returns a duplicate of the eventfd for handing to another process;
// the caller owns it. Do not call Fd on the result: that switches the
// shared open file to blocking mode.
func (e *Event) File() (*os.File, error) {
	nfd := -1
	if err := e.control(func(fd int) (err error) {
		nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("transport: dup: %w", err)
	}
	return os.NewFile(uintptr(nfd), "eventfd"), nil
}

// control runs fn with the eventfd's descriptor held open.
func (e *Event) control(fn func(fd int) error) error {
	rc, err := e.f.SyscallConn()
	if err != nil {
		return ErrClosed
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return ErrClosed
	}
	return ferr
}

// Close closes this process's copy of the eventfd and wakes a blocked
// Wait. It is idempotent.
func (e *Event) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.f.Close() })
	return e.closeErr
}
