package guest

import (
	"context"
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// DefaultRingPages is the size of each ring when OpenOptions leaves it zero:
// the control page and 15 data pages.
const DefaultRingPages = 16

// OpenOptions are the parameters of Open.
type OpenOptions struct {
	// OutPages and InPages are the pages of the guest→host and
	// host→guest rings, each including its control page (so at least 2);
	// zero means DefaultRingPages.
	OutPages, InPages int
	// UserData is OpenChannel's 120 bytes for the device.
	UserData [protocol.UserDefinedSize]byte
	// TargetVP is the VP the guest wants interrupts on.
	TargetVP uint32
}

// Channel is an open channel as the guest sees it: both rings in guest
// memory and one event per direction. The caller drives the rings (package
// ring): it writes Out and signals ToHost, reads In and waits on FromHost.
type Channel struct {
	Offer     Offer
	Out       []byte           // guest→host ring region (control page + data), in guest memory
	In        []byte           // host→guest ring region
	ToHost    *transport.Event // the guest signals the host
	FromHost  *transport.Event // the host signals the guest
	RingGpadl uint32           // the ring GPADL's id

	cl         *Client
	pfn        uint64
	pages      int
	closed     bool          // under cl.mu
	rescinded  chan struct{} // closed when the host rescinds the channel
	rescindSet bool          // under cl.mu
	memRef     bool          // holds guest memory (Client.memRefs); under cl.mu
}

// Rescinded is closed when the host rescinds the channel, or when the
// connection to the host ends. The channel must then be closed (Close
// answers RelIdReleased if the connection is still there).
func (ch *Channel) Rescinded() <-chan struct{} { return ch.rescinded }

// Open opens an offered channel. It allocates OutPages+InPages contiguous
// guest pages, formats both rings (pending send size on, as Linux does),
// shares them as one ring GPADL, hands the host one event per direction,
// sends OpenChannel with the downstream ring at page OutPages and waits for
// OpenChannelResult. A failure status is a *StatusError; everything set up
// is undone on any error.
func (cl *Client) Open(ctx context.Context, o Offer, opts OpenOptions) (_ *Channel, err error) {
	outPages, inPages := opts.OutPages, opts.InPages
	if outPages == 0 {
		outPages = DefaultRingPages
	}
	if inPages == 0 {
		inPages = DefaultRingPages
	}
	if outPages < 2 || inPages < 2 {
		return nil, fmt.Errorf("guest: a ring needs at least 2 pages, got %d and %d", outPages, inPages)
	}
	n := outPages + inPages
	if n > 8190 {
		return nil, fmt.Errorf("guest: %d ring pages, a GPADL range holds at most 8190", n)
	}
	pfn, err := cl.alloc.Alloc(n)
	if err != nil {
		return nil, err
	}
	// Hold guest memory before touching it: a Close meanwhile must not
	// unmap the pages the rings are formatted in.
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		cl.alloc.Free(pfn, n)
		return nil, ErrClosed
	}
	cl.memRefs++
	cl.mu.Unlock()
	ch := &Channel{Offer: o, cl: cl, pfn: pfn, pages: n, rescinded: make(chan struct{})}
	region := cl.mem.Bytes()[pfn*guestmem.PageSize : (pfn+uint64(n))*guestmem.PageSize]
	ch.Out = region[:outPages*guestmem.PageSize]
	ch.In = region[outPages*guestmem.PageSize:]
	if err := ring.Format(ch.Out, true); err != nil {
		cl.alloc.Free(pfn, n)
		cl.unrefMem(false)
		return nil, err
	}
	if err := ring.Format(ch.In, true); err != nil {
		cl.alloc.Free(pfn, n)
		cl.unrefMem(false)
		return nil, err
	}
	pfns := make([]uint64, n)
	for i := range pfns {
		pfns[i] = pfn + uint64(i)
	}
	id := o.ChannelID
	// From here on the channel is registered, so a rescind, even one
	// while the ring GPADL is being made, leaves the RelIdReleased to us:
	// it is sent once, after the host has stopped hearing of the id.
	cl.mu.Lock()
	if _, gone := cl.gone[id]; gone {
		cl.mu.Unlock()
		cl.alloc.Free(pfn, n)
		cl.unrefMem(false)
		return nil, ErrRescinded
	}
	if _, busy := cl.channels[id]; busy {
		cl.mu.Unlock()
		cl.alloc.Free(pfn, n)
		cl.unrefMem(false)
		return nil, fmt.Errorf("guest: channel %d is open already", id)
	}
	if cl.closed {
		cl.mu.Unlock()
		cl.alloc.Free(pfn, n)
		cl.unrefMem(false)
		return nil, ErrClosed
	}
	cl.channels[id] = ch
	ch.memRef = true // the hold taken above
	cl.mu.Unlock()
	ch.RingGpadl, err = cl.CreateGpadl(ctx, id, []gpa.Range{{ByteCount: uint32(n) * guestmem.PageSize, PFNs: pfns}})
	if err != nil {
		ch.closed = true
		ch.finish(true)
		return nil, err
	}
	defer func() {
		if err != nil {
			ch.abandon(ctx)
		}
	}()
	cl.mu.Lock()
	_, gone := cl.gone[id]
	cl.mu.Unlock()
	if gone {
		// Rescinded before the GPADL was made: the host forgot the
		// channel, and OpenChannel would name an id it may hand out anew.
		return nil, ErrRescinded
	}
	if ch.ToHost, err = transport.NewEvent(); err != nil {
		return nil, err
	}
	if ch.FromHost, err = transport.NewEvent(); err != nil {
		return nil, err
	}
	if err = cl.c.SendEvent(id, transport.ToHost, ch.ToHost); err != nil {
		return nil, err
	}
	if err = cl.c.SendEvent(id, transport.ToGuest, ch.FromHost); err != nil {
		return nil, err
	}
	k := waitKey{protocol.TypeOpenChannelResult, id}
	w, err := cl.expect(k)
	if err != nil {
		return nil, err
	}
	cl.mu.Lock()
	openID := cl.nextOpenID
	cl.nextOpenID++
	cl.openIDs[id] = openID
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.openIDs, id)
		cl.mu.Unlock()
	}()
	err = cl.send(&protocol.OpenChannel{
		ChannelID: id,
		// Linux sends the channel id; one fresh per open tells this
		// open's answer from a stale or premature one.
		OpenID:                   openID,
		RingGpadlID:              ch.RingGpadl,
		TargetVP:                 opts.TargetVP,
		DownstreamRingPageOffset: uint32(outPages),
		UserData:                 opts.UserData,
	})
	if err != nil {
		cl.forget(k)
		return nil, err
	}
	m, err := cl.await(ctx, k, w)
	if err != nil {
		return nil, err
	}
	if r := m.(*protocol.OpenChannelResult); r.Status != 0 {
		return nil, &StatusError{Op: "open channel", Status: r.Status}
	}
	return ch, nil
}

// abandon undoes a failed Open: the host has no open channel, but it has
// the ring GPADL (unless the channel was rescinded).
func (ch *Channel) abandon(ctx context.Context) {
	cl := ch.cl
	cl.mu.Lock()
	_, gone := cl.gone[ch.Offer.ChannelID]
	ch.closed = true
	cl.mu.Unlock()
	freeOK := true
	if !gone {
		if err := cl.TeardownGpadl(ctx, ch.Offer.ChannelID, ch.RingGpadl); err != nil && !errors.Is(err, ErrClosed) {
			freeOK = false // the host may still hold the pages
		}
	}
	ch.finish(freeOK)
}

// finish closes the events, frees the pages if it is safe and forgets the
// channel, answering RelIdReleased if the host rescinded it.
func (ch *Channel) finish(freePages bool) {
	cl := ch.cl
	if ch.ToHost != nil {
		ch.ToHost.Close()
	}
	if ch.FromHost != nil {
		ch.FromHost.Close()
	}
	if freePages {
		cl.alloc.Free(ch.pfn, ch.pages)
	}
	id := ch.Offer.ChannelID
	cl.mu.Lock()
	if cl.channels[id] == ch {
		delete(cl.channels, id)
	}
	held := ch.memRef
	ch.memRef = false
	cl.mu.Unlock()
	cl.release(id)
	if held {
		cl.unrefMem(false)
	}
}

// Close closes the channel: CloseChannel, then teardown of the ring GPADL
// (which the host completes once the device has stopped), then the events
// and pages are freed. On a rescinded channel it sends neither (the host
// closed it already) and answers RelIdReleased instead. If the teardown
// fails (ctx ends first), the pages stay allocated, since the host may still
// use them. Close is idempotent.
func (ch *Channel) Close(ctx context.Context) error {
	cl := ch.cl
	cl.mu.Lock()
	if ch.closed {
		cl.mu.Unlock()
		return nil
	}
	ch.closed = true
	_, gone := cl.gone[ch.Offer.ChannelID]
	cl.mu.Unlock()
	var err error
	if !gone {
		err = cl.send(&protocol.CloseChannel{ChannelID: ch.Offer.ChannelID})
		if err == nil {
			err = cl.TeardownGpadl(ctx, ch.Offer.ChannelID, ch.RingGpadl)
		}
	}
	ch.finish(err == nil || errors.Is(err, ErrClosed) || errors.Is(err, transport.ErrClosed) || errors.Is(err, transport.ErrPeerClosed))
	return err
}
