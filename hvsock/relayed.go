package hvsock

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// relayed is one connection of a Relay: a guest's hvsock connection and
// its local socket, a flow each way. Unlike Splice, its flows can stop at
// a clean point (pause): each call in progress is cut short by a
// deadline, and every byte read from one side and not yet written to the
// other is in the flow's buffer, which a servicing saves.
type relayed struct {
	r       *Relay
	gc      *Conn
	local   HalfConn
	toLocal flow // the guest's bytes
	toGuest flow // the local socket's bytes

	// The guest's bytes written to the local socket from the channel's
	// receive goroutine (direct.go); nil if the socket has no descriptor.
	raw   syscall.RawConn
	iov   []syscall.Iovec // the write in progress
	rawN  int             // and what it wrote
	rawFn func(fd uintptr) bool
	sent  atomic.Int64 // bytes the direct writes wrote

	stopping atomic.Bool   // pause asked: a cut-short call is a pause
	parked   bool          // paused for a servicing (under r.mu; Relay.pauseConns, resume)
	exited   chan struct{} // closed when run returns; a new one for each run
	closeMu  sync.Once
}

func newRelayed(r *Relay, gc *Conn, local HalfConn) *relayed {
	rc := &relayed{
		r: r, gc: gc, local: local,
		toLocal: flow{src: gc, dst: local, buf: make([]byte, spliceBuffer)},
		toGuest: flow{src: local, dst: gc, buf: make([]byte, spliceBuffer)},
		exited:  make(chan struct{}),
	}
	rc.passDirect()
	return rc
}

// errPaused ends a flow that a pause cut short; its state is whole.
var errPaused = errors.New("hvsock: relay paused")

// flow moves one direction's bytes: buf[lo:hi] are read from src and not
// yet written to dst.
type flow struct {
	src, dst HalfConn
	buf      []byte
	lo, hi   int
	eof      bool // src's end was read: buf[lo:hi] are the last bytes
	shut     bool // the end was passed on (dst's CloseWrite)
}

// run moves bytes until the end is passed on (nil), an error, or a pause
// (errPaused).
func (f *flow) run(stopping *atomic.Bool) error {
	for {
		for f.lo < f.hi {
			n, err := f.dst.Write(f.buf[f.lo:f.hi])
			f.lo += n
			if err != nil {
				return pauseOr(err, stopping)
			}
		}
		if f.eof {
			if !f.shut {
				if err := f.dst.CloseWrite(); err != nil {
					return pauseOr(err, stopping)
				}
				f.shut = true
			}
			return nil
		}
		if stopping.Load() {
			return errPaused
		}
		n, err := f.src.Read(f.buf)
		f.lo, f.hi = 0, n
		if err == io.EOF {
			f.eof = true
			continue
		}
		if err != nil {
			return pauseOr(err, stopping)
		}
	}
}

// pending is the bytes read and not yet written.
func (f *flow) pending() []byte { return f.buf[f.lo:f.hi] }

// pauseOr is err, or errPaused for a call a pause's deadline cut short.
func pauseOr(err error, stopping *atomic.Bool) error {
	if stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		return errPaused
	}
	return err
}

// run runs both flows until both ended (then both sides are closed), one
// failed (both are closed, which resets them) or a pause parked them (both
// stay open, the relayed connection tracked). It returns when both flows
// have stopped.
func (rc *relayed) run() {
	defer close(rc.exited)
	errs := make(chan error, 1)
	go func() { errs <- rc.toLocal.run(&rc.stopping) }()
	err := rc.toGuest.run(&rc.stopping)
	if err != nil && err != errPaused {
		rc.close() // ends the other flow's call
	}
	err2 := <-errs
	if err == nil || err == errPaused {
		err, err2 = err2, err
	}
	switch {
	case err == errPaused || err2 == errPaused && err == nil:
		return // parked, for Save or Resume
	case err != nil:
		rc.r.log.Info("hvsock relay: connection reset", "route", rc.r.route.String(), "guest", rc.gc.RemoteAddr().String(), "err", err)
	}
	rc.close()
}

// close closes both sides (a reset, unless both ended) and forgets rc.
func (rc *relayed) close() {
	rc.closeMu.Do(func() {
		rc.r.remove(rc)
		rc.gc.Close()    //nolint:errcheck // a reset is the intent, or both ended
		rc.local.Close() //nolint:errcheck // as above
	})
}

// deadlines sets every deadline of both sides to t: a past t cuts short
// whatever call runs, the zero time removes them.
func (rc *relayed) deadlines(t time.Time) {
	rc.gc.SetDeadline(t) //nolint:errcheck // a closed conn's calls end anyway
	if dl, ok := rc.local.(interface{ SetDeadline(time.Time) error }); ok {
		dl.SetDeadline(t) //nolint:errcheck // as above
	}
}

// stop parks both flows at a clean point and reports whether the
// connection is still there to carry (false: it ended or failed).
func (rc *relayed) stop() bool {
	rc.stopping.Store(true)
	rc.deadlines(time.Unix(1, 0))
	<-rc.exited
	return !rc.isClosed()
}

func (rc *relayed) isClosed() bool {
	rc.r.mu.Lock()
	defer rc.r.mu.Unlock()
	_, ok := rc.r.conns[rc]
	return !ok
}

// resume lets parked flows go on, on a goroutine of the relay's.
func (rc *relayed) resume() {
	rc.r.mu.Lock()
	rc.parked = false
	rc.r.mu.Unlock()
	rc.stopping.Store(false)
	rc.deadlines(time.Time{})
	rc.exited = make(chan struct{})
	rc.r.wg.Go(rc.run)
}
