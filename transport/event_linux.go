package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

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
	f         *os.File              // non-blocking eventfd, registered with the runtime poller
	rc        syscall.RawConn       // f's: Wait reads through it
	readFn    func(fd uintptr) bool // e.read, bound once so that Wait does not allocate
	readErr   error                 // readFn's result
	rbuf      [8]byte               // Wait's read buffer; a field, not a local, so Wait does not allocate
	iov       unix.Iovec            // → rbuf
	closed    atomic.Bool
	stopped   atomic.Bool   // StopWaits: no Wait reads the count any more
	sigStart  atomic.Uint64 // Signals that began their write
	sigEnd    atomic.Uint64 // Signals whose write returned
	watch     watchState    // signalWatch's, under its lock
	closeOnce sync.Once
	closeErr  error
}

// newEvent makes an Event of f, an eventfd checkEvent accepted (open
// non-blocking), and has signalWatch look after its Signals.
func newEvent(f *os.File) (*Event, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("transport: eventfd: %w", err)
	}
	e := &Event{f: f, rc: rc}
	e.iov.Base = &e.rbuf[0]
	e.iov.SetLen(len(e.rbuf))
	e.readFn = e.read
	watchEvent(e)
	return e, nil
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
	return newEvent(os.NewFile(uintptr(fd), "eventfd"))
}

// EventFromFile makes an Event of an eventfd inherited from another
// process (servicing). It duplicates f's descriptor; the caller still owns
// f. A descriptor that is not an eventfd is refused.
func EventFromFile(f *os.File) (*Event, error) {
	nfd, err := dupFile(f)
	if err != nil {
		return nil, err
	}
	return eventFromFD(nfd)
}

// AdoptEvent is EventFromFile without the duplicate: it takes ownership
// of f in every case (on error f is closed), so f must have no other use.
// A file the runtime poller already waits on, as os.NewFile makes of an
// inherited non-blocking eventfd, is used as it is: neither duplicated
// nor registered with the poller a second time. f should be
// close-on-exec (servicing.Inherited's are).
func AdoptEvent(f *os.File) (*Event, error) {
	err := controlFD(f, checkEvent)
	if err != nil {
		f.Close()
		return nil, err
	}
	// A file os.NewFile found blocking is not registered with the poller,
	// and Wait could not be cancelled: make a new one of a duplicate.
	if f.SetReadDeadline(time.Time{}) != nil {
		nfd, err := dupFile(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		return eventFromFD(nfd)
	}
	return newEvent(f)
}

// AdoptEventFD is AdoptEvent of a bare descriptor, as a successor
// inherits it (servicing.Inherited): it takes fd over in every case (on
// error fd is closed), checks that it is an eventfd, makes it
// non-blocking and registers it with the runtime poller. fd must have no
// other use and should be close-on-exec.
func AdoptEventFD(fd int) (*Event, error) {
	if fd < 0 {
		return nil, &FrameError{Kind: uint8(kindEvent), Reason: fmt.Sprintf("event descriptor %d", fd)}
	}
	return eventFromFD(fd)
}

// dupFile duplicates f's descriptor (close-on-exec) without switching f
// to blocking mode, as f.Fd would.
func dupFile(f *os.File) (int, error) {
	nfd := -1
	if err := controlFD(f, func(fd int) (err error) {
		nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("transport: dup: %w", err)
		}
		return nil
	}); err != nil {
		return -1, err
	}
	return nfd, nil
}

// controlFD runs fn with f's descriptor held open.
func controlFD(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	return ferr
}

// eventFromFD adopts fd: on error it is closed.
func eventFromFD(fd int) (*Event, error) {
	if err := checkEvent(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return newEvent(os.NewFile(uintptr(fd), "eventfd"))
}

// checkEvent refuses a descriptor that is not an eventfd: a pipe or
// socket handed over in its place could block Signal or Wait forever.
// Then it makes it non-blocking: O_NONBLOCK belongs to the open file,
// shared with the peer's copy; it is set whatever the peer did, or the
// runtime poller could not wait on the descriptor and Wait could not be
// cancelled.
//
// The usual case costs a few cheap system calls instead of a readlink of
// /proc/self/fd, and none of them wakes anyone: fstat says the descriptor
// is a file on the kernel's shared anonymous inode (as eventfds are, and
// pipes, sockets, regular files and devices are not); a write of 2⁶⁴−1
// is refused with EINVAL, as an eventfd refuses it whatever its count and
// as a file without a write operation refuses any write; and a poll
// without waiting finds it writable (POLLOUT) without POLLWRNORM or
// POLLRDNORM, which only an eventfd reports: the other files on that inode
// (timerfd, signalfd, epoll, inotify, fanotify, pidfd, userfaultfd, perf
// events, io_uring, and files without a poll operation, which report all
// four) report POLLWRNORM with POLLOUT, or no POLLOUT. An eventfd whose
// count is about to overflow is not writable, so anything else is judged
// by a write adding 0, which an eventfd takes and changes nothing by and
// which the others refuse; it is kept for that case because it wakes the
// peer's pollers (the guest's, for the event it waits on), which find
// nothing to read. The writes go to no file but such an anonymous one,
// which its sender can write to itself, and only once it is non-blocking.
// Anything else is judged by the name /proc gives it.
func checkEvent(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &FrameError{Kind: uint8(kindEvent), Reason: "cannot inspect event descriptor", Err: err}
	}
	if dev, ino, ok := anonInode(); !ok || st.Dev != dev || st.Ino != ino {
		// Not an eventfd, unless a kernel gives eventfds inodes of
		// their own (or the reference is missing): ask /proc.
		if name, err := fdName(fd); err != nil || name != "anon_inode:[eventfd]" {
			return notEventFD(fd)
		}
		return setNonblock(fd)
	}
	if err := setNonblock(fd); err != nil {
		return err
	}
	if _, err := unix.Write(fd, probeMax[:]); err != unix.EINVAL {
		return notEventFD(fd)
	}
	if writableEventFD(fd) {
		return nil
	}
	n, errZero := unix.Write(fd, probeZero[:])
	if errZero != nil || n != len(probeZero) {
		return notEventFD(fd)
	}
	return nil
}

// writableEventFD reports whether a poll of fd, without waiting, says what
// only a writable eventfd says: POLLOUT, and no POLLWRNORM, POLLRDNORM,
// POLLERR, POLLHUP or POLLNVAL.
func writableEventFD(fd int) bool {
	if !genericPollBits {
		return false
	}
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | pollRdNorm | unix.POLLOUT | pollWrNorm}}
	n, err := unix.Poll(pfd[:], 0)
	if err != nil || n != 1 {
		return false
	}
	const others = pollWrNorm | pollRdNorm | unix.POLLERR | unix.POLLHUP | unix.POLLNVAL
	r := pfd[0].Revents
	return r&unix.POLLOUT != 0 && r&others == 0
}

// POLLRDNORM and POLLWRNORM as most architectures number them
// (asm-generic/poll.h); x/sys/unix does not name them. On MIPS and SPARC
// POLLWRNORM is POLLOUT, and writableEventFD leaves the decision to the
// write probe.
const (
	pollRdNorm = 0x40
	pollWrNorm = 0x100
)

// genericPollBits: pollRdNorm and pollWrNorm are this architecture's.
var genericPollBits = !strings.HasPrefix(runtime.GOARCH, "mips") && !strings.HasPrefix(runtime.GOARCH, "sparc")

// eventfd write probes (checkEvent).
var (
	probeZero = [8]byte{}
	probeMax  = [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// anonRef is the inode the kernel gives eventfds, and other files without
// one of their own (timerfd, signalfd, epoll, …): that of an eventfd this
// process makes on first use (anonInode).
var anonRef struct {
	mu       sync.Mutex
	ok       atomic.Bool // dev and ino are set
	dev, ino uint64
}

// anonInode returns anonRef's inode, or ok false if it cannot be had now
// (out of descriptors, say); a later call tries again.
func anonInode() (dev, ino uint64, ok bool) {
	if anonRef.ok.Load() {
		return anonRef.dev, anonRef.ino, true
	}
	anonRef.mu.Lock()
	defer anonRef.mu.Unlock()
	if !anonRef.ok.Load() {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return 0, 0, false
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			return 0, 0, false
		}
		anonRef.dev, anonRef.ino = st.Dev, st.Ino
		anonRef.ok.Store(true)
	}
	return anonRef.dev, anonRef.ino, true
}

func setNonblock(fd int) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_NONBLOCK == 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
	}
	if err != nil {
		return fmt.Errorf("transport: eventfd: %w", err)
	}
	return nil
}

// notEventFD is the error for a descriptor that is not an eventfd, named
// as /proc names it.
func notEventFD(fd int) error {
	name, err := fdName(fd)
	if err != nil {
		return &FrameError{Kind: uint8(kindEvent), Reason: "cannot inspect event descriptor", Err: err}
	}
	return &FrameError{Kind: uint8(kindEvent), Reason: fmt.Sprintf("event descriptor is %q, not an eventfd", name)}
}

// fdName is what /proc/self/fd says descriptor fd is.
func fdName(fd int) (string, error) {
	var buf [64]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Signal wakes the other side's Wait.
//
// The write blocks only if the peer made it so: it shares the open file,
// and can push the count to its limit and clear O_NONBLOCK. signalWatch
// frees such a write within two of its ticks.
func (e *Event) Signal() error {
	e.sigStart.Add(1)
	_, err := e.f.Write(one[:])
	e.sigEnd.Add(1)
	if err != nil {
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
//
// Wait never blocks in the kernel, whatever the peer did to the shared
// open file's O_NONBLOCK: it reads with RWF_NOWAIT (Linux 5.12 and later
// honour it for eventfds) and otherwise waits in the runtime poller, which
// ctx and Close can wake.
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
			// once the function that set it has finished (and not after
			// StopWaits, whose deadline it is too).
			if !stop() {
				<-fired
				if !e.stopped.Load() {
					e.f.SetReadDeadline(time.Time{})
				}
			}
		}()
	}
	err := e.rc.Read(e.readFn)
	if err == nil {
		err = e.readErr
	}
	if err != nil {
		switch {
		case e.closed.Load() || errors.Is(err, os.ErrClosed):
			return ErrClosed
		case e.stopped.Load() && errors.Is(err, os.ErrDeadlineExceeded):
			return ErrWaitsStopped
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return ctx.Err()
		}
		return fmt.Errorf("transport: wait: %w", err)
	}
	return nil
}

// StopWaits ends a Wait in progress and makes every later one fail at
// once with ErrWaitsStopped, neither reading the count: for a process that
// hands the event to another one, which from then on must get every
// signal. Signal and Close work as before.
func (e *Event) StopWaits() {
	e.stopped.Store(true)
	e.f.SetReadDeadline(aLongTimeAgo) //nolint:errcheck // a closed event has no Wait to end
}

// read is Wait's attempt at the count: false when there is none yet, and
// Wait is to wait for the poller.
func (e *Event) read(fd uintptr) bool {
	for {
		errno := unix.EOPNOTSUPP
		if !noNowait.Load() {
			errno = readNowait(fd, &e.iov)
		}
		switch errno {
		case 0:
			e.readErr = nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case unix.EOPNOTSUPP, unix.ENOSYS:
			// A kernel without RWF_NOWAIT for eventfds: a plain read,
			// which blocks if the peer cleared O_NONBLOCK.
			noNowait.Store(true)
			_, err := unix.Read(int(fd), e.rbuf[:])
			if err == unix.EAGAIN {
				return false
			}
			e.readErr = err
			return true
		default:
			e.readErr = errno
			return true
		}
	}
}

// noNowait: this kernel refused RWF_NOWAIT on an eventfd; Wait reads
// plainly from then on.
var noNowait atomic.Bool

// readNowait reads an eventfd's count into iov without waiting, whatever
// the open file's O_NONBLOCK (preadv2 at the current position with
// RWF_NOWAIT; x/sys/unix's Preadv2 would allocate).
func readNowait(fd uintptr, iov *unix.Iovec) unix.Errno {
	_, _, errno := unix.Syscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(iov)), 1, ^uintptr(0), ^uintptr(0), unix.RWF_NOWAIT)
	return errno
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

// Descriptor is the eventfd's descriptor number, borrowed: it stays this
// Event's, valid until Close, for handing to a successor process by
// number (servicing.Exec clears its close-on-exec for the exec alone).
// Unlike File it makes no duplicate and no *os.File. The caller must not
// close it, change its mode or use it after Close.
func (e *Event) Descriptor() (int, error) {
	fd := -1
	if err := e.control(func(n int) error { fd = n; return nil }); err != nil {
		return -1, err
	}
	return fd, nil
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
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		unwatchEvent(e)
		e.closeErr = e.f.Close()
	})
	return e.closeErr
}
