package blk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// ClientConfig configures a Disk.
type ClientConfig struct {
	Instance protocol.GUID // zero: any instance
	// InFlight is how many requests may be outstanding at once (each has
	// its own bounce buffer of the disk's max transfer in guest memory);
	// zero means DefaultInFlight.
	InFlight int
	// MaxTransfer caps the bytes per request below the disk's own limit;
	// zero takes the disk's.
	MaxTransfer uint32
	// Timeout bounds how long a ReadAt, WriteAt or Flush waits for the
	// host: one the host leaves unanswered that long fails with an error
	// wrapping guest.ErrProtocol, and the disk with it (its channel
	// closes). Zero means DefaultTimeout.
	Timeout time.Duration
}

// DefaultInFlight is ClientConfig.InFlight's default.
const DefaultInFlight = 8

// ErrClosed is returned once the Disk's channel has closed.
var ErrClosed = errors.New("blk: channel closed")

// Disk is the blk VSC: the disk of one blk channel as an io.ReaderAt and
// io.WriterAt. Its methods are safe for concurrent use; large transfers
// are split into max-transfer pieces that run in flight together.
type Disk struct {
	ch          *channel.Channel
	cl          *guest.Client
	size        int64
	readOnly    bool
	maxTransfer uint32
	timeout     time.Duration
	closed      chan struct{}
	calls       sync.Pool // of *call, for ReadAt and WriteAt

	free   chan *slot
	slots  []*slot
	pfn    uint64 // first page of the bounce buffers
	npages int

	// broken is why the host's ring stopped, once it has: the requests
	// in flight then fail with it rather than ErrClosed. stopping is the
	// goroutine that closes the channel then.
	broken   atomic.Pointer[error]
	stopping sync.WaitGroup
}

// slot is one request in flight: its packet and bounce buffer.
type slot struct {
	op    *channel.OutPacket
	pfn   uint64
	buf   []byte // the bounce buffer, in guest memory
	req   [RequestSize]byte
	rng   [1]gpa.Range
	pfns  []uint64
	call  *call
	dst   []byte // READ: where the data goes
	n     uint32 // bytes of this request
	write bool
}

// call is one ReadAt/WriteAt/Flush: its pieces report here.
type call struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
	// timer fails the disk if the host leaves the call's requests
	// unanswered (await); fired closes when its function has run.
	timer *time.Timer
	fired chan struct{}
}

func (c *call) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// Open opens a blk channel of cl, identifies the disk and allocates the
// bounce buffers. It waits until the channel is open, or ctx ends.
func Open(ctx context.Context, cl *guest.Client, cfg ClientConfig) (*Disk, error) {
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	d := &Disk{ch: channel.NewClient(), cl: cl, closed: make(chan struct{}), timeout: cfg.Timeout}
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	active := make(chan struct{})
	var once sync.Once
	err := firstErr(
		d.ch.SetClient(cl),
		d.ch.SetInterface(InterfaceType, cfg.Instance),
		d.ch.SetFriendlyName("blk"),
		d.ch.SetProcessPacketCallbacks(ignore, nil),
		d.ch.SetIncomingStoppedCallback(d.incomingStopped),
		d.ch.SetStateCallbacks(channel.StateCallbacks{
			PostStarted: func(*channel.Channel) { once.Do(func() { close(active) }) },
			Closed: func(*channel.Channel) {
				select {
				case <-d.closed:
				default:
					close(d.closed)
				}
			},
		}),
	)
	if err == nil {
		err = d.ch.Enable()
	}
	if err == nil {
		err = waitOpen(ctx, d.ch, active)
	}
	if err == nil {
		err = d.identify(ctx, cfg)
	}
	if err == nil {
		err = d.allocSlots(cfg.InFlight)
	}
	if err != nil {
		d.Close() //nolint:errcheck // the first error matters
		return nil, err
	}
	return d, nil
}

// incomingStopped hears that the host broke the ring it answers on: no
// completion can come any more, so the channel is closed, which fails
// every request in flight. On the receive goroutine, which the close
// waits for: hence the goroutine of its own, which Close waits for.
func (d *Disk) incomingStopped(_ *channel.Channel, err error) {
	broken := fmt.Errorf("blk: the host broke the channel: %w: %w", guest.ErrProtocol, err)
	d.broken.Store(&broken)
	d.stopping.Go(func() { d.ch.Disable() }) //nolint:errcheck // Close reports the channel's end
}

// ignore completes packets the host should not send.
func ignore(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) { p.Complete(nil) }

// waitOpen waits for a client channel to become active; the channel layer
// opens it in the background and leaves it Closed if that fails.
func waitOpen(ctx context.Context, ch *channel.Channel, active <-chan struct{}) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-active:
			return nil
		case <-t.C:
			if ch.State() == channel.StateClosed {
				return fmt.Errorf("blk: open failed: %w", ErrClosed)
			}
		case <-ctx.Done():
			return fmt.Errorf("blk: waiting for the channel: %w", ctx.Err())
		}
	}
}

func (d *Disk) identify(ctx context.Context, cfg ClientConfig) error {
	var req [RequestSize]byte
	Request{Op: OpIdentify}.Marshal(req[:])
	var out [ResponseSize + 8]byte
	// ctx ends the wait by closing the channel under the request (Open
	// fails then anyway); without a deadline, ten seconds bound it.
	timeout := channel.NoTimeout
	if _, ok := ctx.Deadline(); !ok {
		timeout = 10 * time.Second
	}
	cancelled := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(cancelled)
		d.ch.Disable() //nolint:errcheck // Open reports ctx's end
	})
	n, err := d.ch.SendSynchronousRequest(req[:], nil, 0, out[:], timeout)
	if !stop() {
		<-cancelled
		return fmt.Errorf("blk: identify: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("blk: identify: %w", d.chanErr(err))
	}
	r, ok := ParseResponse(out[:n])
	switch {
	case !ok:
		return fmt.Errorf("blk: identify: short response: %w", guest.ErrProtocol)
	case r.Status != StatusOK:
		return fmt.Errorf("blk: identify: %w", r.Status)
	case r.Size > 1<<62 || r.Value == 0 || r.Value > 1<<20:
		return fmt.Errorf("blk: identify: implausible size %d or max transfer %d: %w", r.Size, r.Value, guest.ErrProtocol)
	}
	d.size, d.readOnly, d.maxTransfer = int64(r.Size), r.Flags&FlagReadOnly != 0, r.Value
	if cfg.MaxTransfer != 0 && cfg.MaxTransfer < d.maxTransfer {
		d.maxTransfer = cfg.MaxTransfer
	}
	return nil
}

// allocSlots takes n bounce buffers of maxTransfer bytes from guest memory.
func (d *Disk) allocSlots(n int) error {
	per := int(gpa.PagesSpanned(0, d.maxTransfer))
	pfn, err := d.cl.Pages().Alloc(n * per)
	if err != nil {
		return fmt.Errorf("blk: bounce buffers: %w", err)
	}
	d.pfn, d.npages = pfn, n*per
	d.free = make(chan *slot, n)
	for i := range n {
		s := &slot{pfn: pfn + uint64(i*per), pfns: make([]uint64, per)}
		s.buf, err = d.cl.Memory().View(s.pfn*pageSize, int(d.maxTransfer))
		if err != nil {
			return err
		}
		for j := range s.pfns {
			s.pfns[j] = s.pfn + uint64(j)
		}
		if s.op, err = d.ch.AllocatePacket(); err != nil {
			return err
		}
		s.op.Context = s
		s.op.SetCompletion(d.done)
		d.slots = append(d.slots, s)
		d.free <- s
	}
	return nil
}

// Size is the disk's size in bytes.
func (d *Disk) Size() int64 { return d.size }

// ReadOnly reports whether the host serves the disk read-only.
func (d *Disk) ReadOnly() bool { return d.readOnly }

// MaxTransfer is the most bytes one request moves.
func (d *Disk) MaxTransfer() uint32 { return d.maxTransfer }

// Close closes the channel and returns the bounce buffers to guest memory.
// Requests still in flight fail with ErrClosed. It is idempotent.
func (d *Disk) Close() error {
	d.stopping.Wait()
	err := d.ch.Cleanup()
	if d.npages > 0 {
		d.cl.Pages().Free(d.pfn, d.npages)
		d.npages = 0
	}
	return err
}

// ReadAt reads len(p) bytes at off (io.ReaderAt): fewer, with io.EOF, at
// the end of the disk.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blk: negative offset")
	}
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	if err := d.transfer(p[:n], off, false); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes p at off (io.WriterAt). Writing past the end of the disk
// writes nothing beyond it and fails with io.ErrShortWrite; a read-only
// disk fails with StatusReadOnly.
func (d *Disk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blk: negative offset")
	}
	if d.readOnly && len(p) > 0 {
		return 0, StatusReadOnly
	}
	n := len(p)
	if off >= d.size {
		n = 0
	} else if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	if n > 0 {
		if err := d.transfer(p[:n], off, true); err != nil {
			return 0, err
		}
	}
	if n < len(p) {
		return n, io.ErrShortWrite
	}
	return n, nil
}

// Flush asks the host to make every completed write durable.
func (d *Disk) Flush() error {
	var req [RequestSize]byte
	Request{Op: OpFlush}.Marshal(req[:])
	var out [ResponseSize + 8]byte
	n, err := d.ch.SendSynchronousRequest(req[:], nil, 0, out[:], d.timeout)
	if err != nil {
		return d.flushFailed(err)
	}
	r, ok := ParseResponse(out[:n])
	if !ok {
		return fmt.Errorf("blk: flush: short response: %w", guest.ErrProtocol)
	}
	if r.Status != StatusOK {
		return r.Status
	}
	return nil
}

func (d *Disk) chanErr(err error) error {
	if broken := d.broken.Load(); broken != nil {
		return *broken
	}
	if errors.Is(err, channel.StatusDeviceRemoved) || errors.Is(err, channel.StatusInvalidDeviceState) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// transfer moves p at off in max-transfer pieces, as many in flight as
// there are free slots, and waits for all of them.
func (d *Disk) transfer(p []byte, off int64, write bool) error {
	c := d.newCall()
	for len(p) > 0 {
		n := min(len(p), int(d.maxTransfer))
		var s *slot
		select {
		case s = <-d.free:
		case <-d.closed:
			c.fail(ErrClosed)
		}
		if s == nil {
			break
		}
		s.call, s.write, s.n = c, write, uint32(n)
		op := OpRead
		if write {
			op = OpWrite
			copy(s.buf, p[:n])
			s.dst = nil
		} else {
			// What an earlier request left in the bounce buffer (another
			// caller's WRITE, say) must not pass for this READ's data if
			// the host claims success without writing any.
			clear(s.buf[:n])
			s.dst = p[:n]
		}
		Request{Op: op, Offset: uint64(off), Length: uint32(n)}.Marshal(s.req[:])
		s.rng[0] = gpa.Range{ByteCount: uint32(n), PFNs: s.pfns[:gpa.PagesSpanned(0, uint32(n))]}
		c.wg.Add(1)
		if err := s.op.SendExternal(s.req[:], s.rng[:], channel.SendWaitForCompletion); err != nil {
			c.wg.Done()
			s.call, s.dst = nil, nil
			d.free <- s
			c.fail(d.chanErr(err))
			break
		}
		p, off = p[n:], off+int64(n)
	}
	return d.await(c)
}

// done is a slot's completion routine, on the receive goroutine (or the
// goroutine closing the channel): it checks the response, copies READ
// data out of the bounce buffer and frees the slot.
func (d *Disk) done(op *channel.OutPacket, st channel.Status, payload []byte) {
	s := op.Context.(*slot)
	c := s.call
	switch r, ok := ParseResponse(payload); {
	case st != channel.StatusSuccess:
		c.fail(d.chanErr(st))
	case !ok:
		c.fail(fmt.Errorf("blk: short response: %w", guest.ErrProtocol))
	case r.Status != StatusOK:
		c.fail(r.Status)
	case r.Value != s.n:
		c.fail(fmt.Errorf("blk: host moved %d bytes of %d: %w", r.Value, s.n, guest.ErrProtocol))
	case !s.write:
		copy(s.dst, s.buf)
	}
	s.call, s.dst = nil, nil
	d.free <- s // never blocks: room for every slot
	c.wg.Done()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
