package channel

import (
	"context"
	"errors"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// serverDevice is how the host sees a server channel: a host.Device
// offered to one guest by Guest.Offer.
type serverDevice struct {
	c *Channel
}

// Offer implements host.Device.
func (d *serverDevice) Offer() host.OfferSpec {
	c := d.c
	cfg := &c.cfg
	typ, inst := cfg.ifType, cfg.ifInst
	if p := cfg.primary; p != nil {
		typ, inst = p.cfg.ifType, p.cfg.ifInst
	}
	flags := protocol.OfferFlagGPADLs
	if cfg.serverFlags&ServerTLNPIProviderOffer != 0 {
		// An hvsock offer carries exactly 0x2000 | pipe | 0x1 (OpenVMM,
		// DEVICES.md §2.4); it has no GPADLs beyond its ring.
		flags = 0
	}
	if cfg.serverFlags&ServerEnumerateDeviceInterface != 0 {
		flags |= protocol.OfferFlagEnumerateDeviceInterface
	}
	if cfg.serverFlags&ServerLoopbackOffer != 0 {
		flags |= protocol.OfferFlagLoopback
	}
	if cfg.serverFlags&ServerTLNPIProviderOffer != 0 {
		flags |= protocol.OfferFlagTLNPIProvider
	}
	ud := cfg.userDefined
	cfg.offerPipe(&flags, &ud)
	return host.OfferSpec{
		InterfaceType:     typ,
		InterfaceInstance: inst,
		SubchannelIndex:   cfg.subIndex,
		Flags:             flags,
		MMIOMegabytes:     cfg.mmio,
		UserDefined:       ud,
	}
}

// Open implements host.Device: the guest opened the channel. The worker
// sets it up and runs Opened; Started and PostStarted follow after the
// guest has its answer.
func (d *serverDevice) Open(hc *host.Channel) error {
	return d.c.call(reqOpen, hc)
}

// Close implements host.Device: the guest closed the channel, went away,
// or the offer is being rescinded.
func (d *serverDevice) Close(hc *host.Channel) {
	d.c.call(reqClose, hc) //nolint:errcheck // always nil
}

// serverOpen opens the server side on the worker.
func (c *Channel) serverOpen(hc *host.Channel) error {
	c.mu.Lock()
	bad := !c.ph.waiting()
	c.mu.Unlock()
	if bad {
		return fail(StatusInvalidDeviceState, "open of a channel that is not waiting for one")
	}
	ep, err := c.openEndpoint(hc.In, hc.Out, hc.FromGuest, hc.ToGuest, hc.Memory, hc.Gpadls, tapOf(hc.Capture, hc.GuestID, hc.ChannelID))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.hc = hc
	c.mapped = make(map[uint32]bool)
	c.mu.Unlock()
	err = c.runOpened()
	if err == nil {
		err = c.goLive(ep)
	}
	if err != nil {
		c.destroyGpadls()
		c.dropEndpoint()
		c.mu.Lock()
		c.hc = nil
		c.mu.Unlock()
		return err
	}
	return nil
}

// clientTryOpen waits for the target offer and opens it, on the worker,
// unless the channel is open, closed, or being disabled. A failure other
// than Disable's leaves the channel Closed.
func (c *Channel) clientTryOpen(ctx context.Context) {
	c.mu.Lock()
	skip := !c.ph.waiting() || ctx.Err() != nil
	c.mu.Unlock()
	if skip {
		return
	}
	cfg := &c.cfg
	cl := cfg.client
	if cfg.primary != nil {
		// A subchannel's wait for its offer (and its open) ends when
		// the primary closes: the worker, which hears of it, is here.
		var stop func()
		ctx, stop = c.untilPrimaryCloses(ctx)
		defer stop()
	}
	match := func(o guest.Offer) bool {
		return o.InterfaceType == cfg.ifType && (cfg.ifInst.IsZero() || o.InterfaceInstance == cfg.ifInst) && o.SubchannelIndex == 0
	}
	if p := cfg.primary; p != nil {
		typ, inst := p.Interface()
		match = func(o guest.Offer) bool {
			return o.InterfaceType == typ && o.InterfaceInstance == inst && o.SubchannelIndex == cfg.subIndex
		}
	}
	closed := func() {
		c.mu.Lock()
		c.moveLocked("open", evLost) //nolint:errcheck // not open yet: waiting, which evLost leaves
		c.mu.Unlock()
		c.failOutgoing() // closed for good: what was queued for the open fails now
	}
	offer, err := cl.WaitOfferMatch(ctx, match)
	if err != nil {
		if ctx.Err() == nil {
			closed()
		}
		return
	}
	gch, err := cl.Open(ctx, offer, guest.OpenOptions{InPages: cfg.inPages, OutPages: cfg.outPages, TargetVP: cfg.targetVP})
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, guest.ErrRescinded) {
			closed()
		}
		return
	}
	ep, err := c.openEndpoint(gch.In, gch.Out, gch.FromHost, gch.ToHost, cl.Memory(), nil, epTap{})
	if err != nil {
		closeGuestChannel(gch)
		closed()
		return
	}
	c.mu.Lock()
	c.gch = gch
	c.gpadls = make(map[uint32]clientGpadl)
	c.mu.Unlock()
	err = c.runOpened()
	if err == nil {
		err = c.goLive(ep)
	}
	if err != nil {
		c.dropEndpoint()
		closeGuestChannel(gch)
		c.destroyGpadls()
		c.mu.Lock()
		c.gch = nil
		c.moveLocked("open", evLost) //nolint:errcheck // as in closed
		c.mu.Unlock()
		c.failOutgoing()
		return
	}
	c.maybeActivate()
}

// closeGuestChannel closes a channel whose open failed after the host
// opened it, waiting for the host at most clientTeardownWait.
func closeGuestChannel(gch *guest.Channel) {
	ctx, cancel := teardownContext()
	defer cancel()
	gch.Close(ctx) //nolint:errcheck // best effort
}

// untilPrimaryCloses is ctx, ended also when the primary closes (the
// signal on primaryClosed). stop ends the watch; if the primary closed,
// it signals primaryClosed again, for the worker's loop, which closes
// what opened meanwhile and moves the channel to Closed.
func (c *Channel) untilPrimaryCloses(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	closed := make(chan bool, 1)
	go func() {
		select {
		case <-c.primaryClosed:
			cancel()
			closed <- true
		case <-ctx.Done():
			closed <- false
		}
	}()
	return ctx, func() {
		cancel()
		if <-closed {
			select {
			case c.primaryClosed <- struct{}{}:
			default:
			}
		}
	}
}
