package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/guestmem"
)

// maxPendingEvents bounds the Events a peer may hand over that this side
// has not taken yet. Two per channel id (ids are below 2048 on VMBus)
// would be 4096; real use keeps a handful pending at a time.
const maxPendingEvents = 1024

// eventKey names a handed-over Event.
type eventKey struct {
	channel uint32
	dir     Direction
}

// Conn is one end of a host–guest connection.
//
// Concurrency: Send, SendMemory, SendEvent, TakeMemory, TakeEvent and Close
// are safe for concurrent use. Recv may be called by one goroutine at a
// time (the control plane's receive loop); it is also what reads the
// peer's handovers, in order with the messages. Close wakes a blocked
// Recv and waits for it to return.
type Conn struct {
	uc   *net.UnixConn
	role Role

	// readMu serialises Recv and owns the fields below it.
	readMu    sync.Mutex
	helloSeen bool
	rbuf      [maxFrameSize + 1]byte
	oob       []byte

	// sendTimeout bounds each write (SetSendTimeout); 0 waits forever.
	sendTimeout atomic.Int64

	mu         sync.Mutex // guards the fields below
	closed     bool
	dead       error // sticky receive error
	memory     *guestmem.Memory
	memoryRcvd bool
	memorySent bool
	events     map[eventKey]*Event

	closeOnce sync.Once
	closeErr  error
}

func newConn(uc *net.UnixConn, role Role, established bool) *Conn {
	return &Conn{
		uc:        uc,
		role:      role,
		helloSeen: established,
		oob:       make([]byte, oobSpace),
		events:    make(map[eventKey]*Event),
	}
}

// Role is the side this end speaks for.
func (c *Conn) Role() Role { return c.role }

// SetSendTimeout bounds how long each later Send, SendMemory or SendEvent
// may wait for room in the peer's receive queue: one that waits longer
// fails with ErrSendTimeout, and the frame is not sent. A peer that stops
// reading can thus hold a sender for at most d. Zero (the default) waits
// as long as it takes. It is safe to call at any time.
func (c *Conn) SetSendTimeout(d time.Duration) {
	c.sendTimeout.Store(int64(max(d, 0)))
	if d <= 0 {
		c.uc.SetWriteDeadline(time.Time{}) //nolint:errcheck // fails only once closed, when no send waits anyway
	}
}

// Send sends one control message of 1 to MaxMessageSize bytes. It may
// block while the peer's receive queue is full, at most for the send
// timeout (SetSendTimeout); Close unblocks it.
func (c *Conn) Send(msg []byte) error {
	if len(msg) == 0 || len(msg) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrMessageSize, len(msg), MaxMessageSize)
	}
	var buf [maxFrameSize]byte
	return c.write(appendFrame(buf[:0], frame{kind: kindMessage, msg: msg}), -1)
}

// Recv waits for the next control message and copies it into buf, which
// should hold MaxMessageSize bytes: a longer message is cut to len(buf)
// and reported with io.ErrShortBuffer (the rest is lost).
//
// On the way it takes in the peer's hello and its handovers of guest
// memory and Events, so a handover sent before a message can be taken
// (TakeMemory, TakeEvent) once Recv has returned that message.
//
// Errors: ctx.Err() if ctx ends first (the connection stays usable);
// ErrClosed after Close; ErrPeerClosed when the peer has gone; an error
// matching ErrProtocol if the peer broke the protocol. The last two are
// sticky: every later Recv returns them.
func (c *Conn) Recv(ctx context.Context, buf []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		f, fd, err := c.readFrame(ctx)
		if err != nil {
			return 0, err
		}
		switch f.kind {
		case kindHello:
			continue
		case kindMessage:
			n := copy(buf, f.msg)
			if n < len(f.msg) {
				return n, io.ErrShortBuffer
			}
			return n, nil
		case kindMemory:
			err = c.adoptMemory(f, fd)
		case kindEvent:
			err = c.adoptEvent(f, fd)
		}
		if err != nil {
			return 0, c.fail(err)
		}
	}
}

// HelloSeen reports whether the peer's hello has been received. A
// successor taking over the connection (File) must know: if not, the hello
// is still in the socket (FromFileBeforeHello). Call it while no Recv is
// under way.
func (c *Conn) HelloSeen() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.helloSeen
}

// readFrame reads the next frame. It checks the hello (first and only
// once) and returns it too. A returned descriptor belongs to the caller.
// Must hold readMu.
func (c *Conn) readFrame(ctx context.Context) (frame, int, error) {
	if err := c.sticky(); err != nil {
		return frame{}, -1, err
	}
	f, fd, err := c.readOne(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return frame{}, -1, err
		}
		return frame{}, -1, c.fail(err)
	}
	if f.kind == kindHello {
		if c.helloSeen {
			return frame{}, -1, c.fail(frameErr(uint8(kindHello), "second hello"))
		}
		if err := c.checkHello(f); err != nil {
			return frame{}, -1, c.fail(err)
		}
		c.helloSeen = true
		return f, -1, nil
	}
	if !c.helloSeen {
		closeFD(fd)
		return frame{}, -1, c.fail(frameErr(uint8(f.kind), "frame before hello"))
	}
	return f, fd, nil
}

func (c *Conn) checkHello(f frame) error {
	if f.version != helloVersion {
		return &FrameError{Kind: uint8(kindHello), Reason: fmt.Sprintf("peer speaks version %d, we speak %d", f.version, helloVersion), Err: ErrVersion}
	}
	if f.role != c.role.peer() {
		return frameErr(uint8(kindHello), "peer says it is the %v, we are the %v", f.role, c.role)
	}
	return nil
}

// awaitHello reads the peer's hello, for Dial, which should not return a
// connection the host has not accepted. Must not run concurrently with Recv.
func (c *Conn) awaitHello(ctx context.Context) error {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for !c.helloSeen {
		_, fd, err := c.readFrame(ctx)
		if err != nil {
			return err
		}
		closeFD(fd)
	}
	return nil
}

func (c *Conn) sendHello() error {
	var buf [maxFrameSize]byte
	return c.write(appendFrame(buf[:0], frame{kind: kindHello, role: c.role, version: helloVersion}), -1)
}

// adoptMemory takes a received memory descriptor. It owns fd.
func (c *Conn) adoptMemory(f frame, fd int) error {
	if c.role != Host {
		closeFD(fd)
		return frameErr(uint8(kindMemory), "guest memory sent to the guest")
	}
	c.mu.Lock()
	again := c.memoryRcvd
	c.memoryRcvd = true
	c.mu.Unlock()
	if again {
		closeFD(fd)
		return frameErr(uint8(kindMemory), "guest memory sent twice")
	}
	m, err := guestmem.FromFD(fd)
	if err != nil {
		return &FrameError{Kind: uint8(kindMemory), Reason: "guest memory refused", Err: err}
	}
	if m.Size() != f.size {
		m.Close()
		return frameErr(uint8(kindMemory), "frame says %d bytes, memory has %d", f.size, m.Size())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		m.Close()
		return ErrClosed
	}
	c.memory = m
	return nil
}

// adoptEvent takes a received eventfd. It owns fd.
func (c *Conn) adoptEvent(f frame, fd int) error {
	e, err := eventFromFD(fd)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := eventKey{f.channel, f.dir}
	old := c.events[k]
	if c.closed {
		e.Close()
		return ErrClosed
	}
	if old == nil && len(c.events) >= maxPendingEvents {
		e.Close()
		return frameErr(uint8(kindEvent), "more than %d events handed over and not taken", maxPendingEvents)
	}
	// A newer handover for the same channel and direction replaces one
	// never taken, e.g. from an open the host refused.
	if old != nil {
		old.Close()
	}
	c.events[k] = e
	return nil
}

// SendMemory hands guest memory to the host. Only the guest calls it, once,
// before the control messages that refer to guest memory; the host's Recv
// adopts it.
func (c *Conn) SendMemory(m *guestmem.Memory) error {
	if c.role != Guest {
		panic("transport: SendMemory on the host side")
	}
	c.mu.Lock()
	sent := c.memorySent
	c.memorySent = true
	c.mu.Unlock()
	if sent {
		return errors.New("transport: guest memory already sent")
	}
	f, err := m.File()
	if err != nil {
		return err
	}
	defer f.Close()
	var buf [maxFrameSize]byte
	return c.writeFile(appendFrame(buf[:0], frame{kind: kindMemory, size: m.Size()}), f)
}

// TakeMemory returns the guest memory the guest handed over, once; the
// caller owns it from then on. ErrNotReceived if Recv has not read it (or
// it was taken).
func (c *Conn) TakeMemory() (*guestmem.Memory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memory
	if m == nil {
		return nil, fmt.Errorf("%w: guest memory", ErrNotReceived)
	}
	c.memory = nil
	return m, nil
}

// SendEvent hands the peer a copy of e for a channel and direction. By
// convention the guest creates both Events of a channel and sends them
// before its OpenChannel message; the caller keeps e.
func (c *Conn) SendEvent(channel uint32, dir Direction, e *Event) error {
	if dir != ToHost && dir != ToGuest {
		panic(fmt.Sprintf("transport: SendEvent with %v", dir))
	}
	var buf [maxFrameSize]byte
	b := appendFrame(buf[:0], frame{kind: kindEvent, channel: channel, dir: dir})
	return e.control(func(fd int) error { return c.write(b, fd) })
}

// TakeEvent returns the Event the peer handed over for channel and dir,
// once; the caller owns it from then on. ErrNotReceived if there is none.
func (c *Conn) TakeEvent(channel uint32, dir Direction) (*Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := eventKey{channel, dir}
	e := c.events[k]
	if e == nil {
		return nil, fmt.Errorf("%w: event for channel %d %v", ErrNotReceived, channel, dir)
	}
	delete(c.events, k)
	return e, nil
}

// sticky returns the error that ended the connection, if any.
func (c *Conn) sticky() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return c.dead
}

// fail records err as the end of the connection (the first error wins) and
// returns what Recv should report.
func (c *Conn) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.dead == nil {
		c.dead = err
	}
	return c.dead
}

// Close closes this end: a blocked Recv or Send returns ErrClosed, memory
// and Events handed over but not taken are closed, and the peer sees
// ErrPeerClosed once every descriptor of this end (see File) is closed.
// Close waits for a running Recv to return. It is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		m, evs := c.memory, c.events
		c.memory, c.events = nil, nil
		c.mu.Unlock()
		c.closeErr = c.uc.Close()
		if m != nil {
			m.Close()
		}
		for _, e := range evs {
			e.Close()
		}
		// Recv returns promptly now that the socket is closed; waiting
		// for it means no goroutine of ours (Recv's context watcher)
		// outlives Close.
		c.readMu.Lock()
		//lint:ignore SA2001 waiting for Recv to leave is the point
		c.readMu.Unlock()
	})
	return c.closeErr
}
