package host

import (
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// openChannel is an open channel's host-side resources.
type openChannel struct {
	ch      *Channel
	dev     Device
	ring    *gpadl
	inMap   *guestmem.Mapping
	outMap  *guestmem.Mapping
	evTo    *transport.Event
	evFrom  *transport.Event
	release func() // returns the ring GPADL to the set
}

// errOpen carries the status an OpenChannel fails with.
type errOpen struct {
	status uint32
	err    error
}

func (e *errOpen) Error() string { return e.err.Error() }

func openErr(status uint32, format string, args ...any) error {
	return &errOpen{status: status, err: fmt.Errorf(format, args...)}
}

// openChannel answers OpenChannel, always with an OpenChannelResult: the
// guest waits for it, and a failure status is how it learns what went
// wrong.
func (gc *guestConn) openChannel(m *protocol.OpenChannel) {
	err := gc.tryOpen(m)
	status := statusSuccess
	if err != nil {
		status = statusUnsuccessful
		var oe *errOpen
		if errors.As(err, &oe) {
			status = oe.status
		}
		gc.log.Warn("open failed", "channel", m.ChannelID, "status", status, "err", err)
	} else {
		gc.log.Info("channel opened", "channel", m.ChannelID, "gpadl", m.RingGpadlID, "downstream_offset", m.DownstreamRingPageOffset)
	}
	gc.send(&protocol.OpenChannelResult{ChannelID: m.ChannelID, OpenID: m.OpenID, Status: status})
}

func (gc *guestConn) tryOpen(m *protocol.OpenChannel) (err error) {
	i, ok := gc.channelIndex(m.ChannelID)
	if !ok {
		return openErr(statusInvalidParameter, "no such channel")
	}
	if gc.chans[i].open != nil {
		return openErr(statusInvalidDeviceState, "channel already open")
	}
	if m.Extended && gc.features&(protocol.FeatureGuestSpecifiedSignalParams|protocol.FeatureInterruptRedirection) == 0 {
		return openErr(statusInvalidParameter, "long OpenChannel form without the feature")
	}
	oc, err := gc.buildOpen(i, m, gc.takeEvent, true)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			oc.free()
		}
	}()
	if err := oc.dev.Open(oc.ch); err != nil {
		return openErr(statusUnsuccessful, "device: %v", err)
	}
	gc.chans[i].open = oc
	gc.connectDoneLocked(&gc.chans[i].spec)
	return nil
}

// buildOpen maps the rings of channel index i as OpenChannel m describes
// them and takes its events, everything but the device's Open: tryOpen
// and a restore share it. With checkRings it refuses rings whose control
// pages are corrupt, as an open does; a restore does not: the guest may
// have written them since the open, and a corrupt ring stops only the
// channel that reads it (its device checks them as it builds its
// endpoints).
func (gc *guestConn) buildOpen(i int, m *protocol.OpenChannel, takeEvent func(uint32, transport.Direction) (*transport.Event, error), checkRings bool) (_ *openChannel, err error) {
	g, err := gc.gpadls.acquireRing(m.ChannelID, m.RingGpadlID)
	if err != nil {
		return nil, openErr(statusInvalidParameter, "%v", err)
	}
	oc := &openChannel{ring: g, dev: gc.chans[i].dev}
	oc.release = func() { gc.gpadls.release(g, false) }
	defer func() {
		if err != nil {
			oc.free()
		}
	}()

	// The ring GPADL is one range of whole pages from offset 0; the two
	// halves are mapped separately, each contiguous in this process
	// whatever the guest's PFNs are.
	if len(g.ranges) != 1 {
		return nil, openErr(statusInvalidParameter, "ring GPADL has %d ranges, want 1", len(g.ranges))
	}
	r := g.ranges[0]
	pages := uint64(len(r.PFNs))
	if r.ByteOffset != 0 || uint64(r.ByteCount) != pages*guestmem.PageSize {
		return nil, openErr(statusInvalidParameter, "ring GPADL is not whole pages from offset 0")
	}
	off := uint64(m.DownstreamRingPageOffset)
	if off == 0 || off >= pages {
		return nil, openErr(statusInvalidParameter, "downstream ring page offset %d outside (0, %d)", off, pages)
	}
	// One mmap for both halves when the pages are consecutive.
	if oc.inMap, oc.outMap, err = gc.mem.MapPagesSplit(r.PFNs, int(off), guestmem.ReadWrite); err != nil {
		return nil, openErr(statusInvalidParameter, "map rings: %v", err)
	}
	// Constructing the endpoints validates the control pages the guest
	// wrote; the device builds its own.
	if checkRings {
		if _, err = ring.NewReader(oc.inMap.Bytes()); err != nil {
			return nil, openErr(statusInvalidParameter, "guest→host ring: %v", err)
		}
		if _, err = ring.NewWriter(oc.outMap.Bytes()); err != nil {
			return nil, openErr(statusInvalidParameter, "host→guest ring: %v", err)
		}
	}
	if oc.evFrom, err = takeEvent(m.ChannelID, transport.ToHost); err != nil {
		return nil, openErr(statusInvalidParameter, "guest→host event: %v", err)
	}
	if oc.evTo, err = takeEvent(m.ChannelID, transport.ToGuest); err != nil {
		return nil, openErr(statusInvalidParameter, "host→guest event: %v", err)
	}
	cs := &gc.chans[i]
	oc.ch = &Channel{
		GuestID:      gc.id,
		ChannelID:    m.ChannelID,
		ConnectionID: cs.connID,
		Offer:        cs.spec,
		Params:       *m,
		Memory:       gc.mem,
		In:           oc.inMap.Bytes(),
		Out:          oc.outMap.Bytes(),
		ToGuest:      oc.evTo,
		FromGuest:    oc.evFrom,
		Gpadls:       &GpadlTable{set: gc.gpadls, channelID: m.ChannelID},
		Capture:      &gc.h.capture,
	}
	return oc, nil
}

// eventKey names one handed-over event.
type eventKey struct {
	channelID uint32
	dir       transport.Direction
}

// takeEvent takes the event the guest handed over for a channel and
// direction: from the transport, else one kept across a save.
func (gc *guestConn) takeEvent(channelID uint32, dir transport.Direction) (*transport.Event, error) {
	e, err := gc.c.TakeEvent(channelID, dir)
	k := eventKey{channelID, dir}
	if err == nil {
		if old := gc.pendingEvents[k]; old != nil {
			old.Close()
			delete(gc.pendingEvents, k)
		}
		return e, nil
	}
	if old := gc.pendingEvents[k]; old != nil {
		delete(gc.pendingEvents, k)
		return old, nil
	}
	return nil, err
}

// free releases what the host holds for a channel whose device is closed
// (or was never opened).
func (oc *openChannel) free() {
	if oc.inMap != nil {
		oc.inMap.Close()
	}
	if oc.outMap != nil {
		oc.outMap.Close()
	}
	if oc.evTo != nil {
		oc.evTo.Close()
	}
	if oc.evFrom != nil {
		oc.evFrom.Close()
	}
	oc.release()
}

// closeChannelLocked closes the device of channel index i and frees the
// channel's resources. A device that still holds GPADL mappings when Close
// returns has broken its contract; the mappings are dropped so that pending
// teardowns complete. Must hold mu.
func (gc *guestConn) closeChannelLocked(i int, why string) {
	oc := gc.chans[i].open
	gc.chans[i].open = nil
	oc.dev.Close(oc.ch)
	oc.free()
	gc.forceUnmap(oc.ch.ChannelID)
	gc.log.Info("channel closed", "channel", oc.ch.ChannelID, "why", why)
}

// forceUnmap releases the mappings a closed device left behind.
func (gc *guestConn) forceUnmap(channelID uint32) {
	s := gc.gpadls
	var due []uint32
	s.mu.Lock()
	for _, g := range s.byID {
		if g.channelID == channelID && g.mapped {
			gc.log.Warn("device left a GPADL mapped after Close", "channel", channelID, "gpadl", g.id)
			if s.releaseLocked(g, true) {
				due = append(due, g.id)
			}
		}
	}
	s.mu.Unlock()
	for _, id := range due {
		s.torndown(id)
	}
}

func (gc *guestConn) closeChannel(m *protocol.CloseChannel) error {
	id := m.ChannelID
	if gc.offersSent && id != 0 && uint64(id) <= uint64(len(gc.chans)) && (gc.chans[id-1].rescinded || gc.chans[id-1].released) {
		// The host closed it at the rescind; a guest may still say so.
		return nil
	}
	i, ok := gc.channelIndex(id)
	if !ok || gc.chans[i].open == nil {
		return gc.drop(protocol.TypeCloseChannel, "channel not open", "channel", m.ChannelID)
	}
	gc.closeChannelLocked(i, "guest closed it")
	return nil
}
