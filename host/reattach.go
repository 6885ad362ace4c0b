package host

import (
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
)

// ErrNotRestored: no restored channel with that identity waits for a
// server to re-attach.
var ErrNotRestored = errors.New("host: no restored channel waits with that identity")

// waitingDevice stands for the server of a restored channel until it
// re-attaches: the guest's open of it fails, its close has nothing to stop.
type waitingDevice struct{}

func (waitingDevice) Offer() OfferSpec { return OfferSpec{} }
func (waitingDevice) Open(*Channel) error {
	return errors.New("the channel's server has not re-attached since the restore")
}
func (waitingDevice) Close(*Channel) {}

// RestoredChannel is what a restored bus state holds for one channel that
// waits for its server to re-attach: what the channel layer checks its
// own saved state against before it restores it.
type RestoredChannel struct {
	ChannelID    uint32
	ConnectionID uint32
	Open         bool
	Params       protocol.OpenChannel // the guest's OpenChannel, if Open
	Gpadls       []RestoredGpadl      // the channel's GPADLs
}

// RestoredGpadl is one GPADL of a RestoredChannel.
type RestoredGpadl struct {
	ID                             uint32
	Created, TearingDown, Arriving bool
	Mapped, ReadOnly, Ring         bool
}

func sameIdentity(a, b *OfferSpec) bool {
	return a.InterfaceType == b.InterfaceType && a.InterfaceInstance == b.InterfaceInstance && a.SubchannelIndex == b.SubchannelIndex
}

// waitingIndex finds the restored entry of spec's identity. Must hold mu.
func (gc *guestConn) waitingIndex(spec *OfferSpec) (int, bool) {
	for i := range gc.chans {
		cs := &gc.chans[i]
		if cs.present && cs.waiting && !cs.rescinded && !cs.released && sameIdentity(&cs.spec, spec) {
			return i, true
		}
	}
	return 0, false
}

// Restored describes the restored channel of spec's identity (interface
// type, instance and subchannel index), if one waits for its server.
func (g *Guest) Restored(spec OfferSpec) (RestoredChannel, bool) {
	gc := g.gc
	gc.mu.Lock()
	defer gc.mu.Unlock()
	i, ok := gc.waitingIndex(&spec)
	if !ok {
		return RestoredChannel{}, false
	}
	cs := &gc.chans[i]
	rc := RestoredChannel{ChannelID: uint32(i + 1), ConnectionID: cs.connID}
	if cs.open != nil {
		rc.Open, rc.Params = true, cs.open.ch.Params
	}
	s := gc.gpadls
	s.mu.Lock()
	for _, gp := range s.byID {
		if gp.channelID != rc.ChannelID {
			continue
		}
		rc.Gpadls = append(rc.Gpadls, RestoredGpadl{
			ID: gp.id, Created: gp.state == gpadlCreated, TearingDown: gp.state == gpadlTearingDown,
			Arriving: gp.state == gpadlAssembling, Mapped: gp.mapped, ReadOnly: gp.readOnly, Ring: gp.ring,
		})
	}
	s.mu.Unlock()
	return rc, true
}

// Reattach hands a restored channel to its server again: dev takes the
// place of the channel its predecessor offered with Guest.Offer, matched
// by dev.Offer()'s identity, whose whole offer must be the one the guest
// knows. It returns the offer's handle and, if the channel is open, the
// open channel on the same rings and events (dev.Open is not called: the
// server continues what it saved). Nothing is sent to the guest.
func (g *Guest) Reattach(dev Device) (*Offered, *Channel, error) {
	spec := dev.Offer()
	gc := g.gc
	gc.mu.Lock()
	defer gc.mu.Unlock()
	i, ok := gc.waitingIndex(&spec)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %v/%v subchannel %d", ErrNotRestored, spec.InterfaceType, spec.InterfaceInstance, spec.SubchannelIndex)
	}
	cs := &gc.chans[i]
	if cs.spec != spec {
		return nil, nil, fmt.Errorf("host: re-attach of channel %d with an offer that differs from the one the guest has", i+1)
	}
	cs.waiting = false
	cs.dev = dev
	var ch *Channel
	if cs.open != nil {
		cs.open.dev = dev
		ch = cs.open.ch
	}
	return cs.dynamic, ch, nil
}

// Abandon gives up the restored channel of spec's identity (KMCL
// FORCE_NEW_CHANNEL): it is closed and rescinded as Offered.Rescind does
// (RescindChannelOffer, or nothing if the guest never asked for offers),
// so the guest drops the old instance; the caller then offers the
// channel anew. It does not wait for the guest's RelIdReleased.
func (g *Guest) Abandon(spec OfferSpec) error {
	gc := g.gc
	gc.mu.Lock()
	defer gc.mu.Unlock()
	i, ok := gc.waitingIndex(&spec)
	if !ok {
		return fmt.Errorf("%w: %v/%v subchannel %d", ErrNotRestored, spec.InterfaceType, spec.InterfaceInstance, spec.SubchannelIndex)
	}
	cs := &gc.chans[i]
	cs.waiting = false
	switch {
	case !gc.offersSent || cs.released:
		gc.removeDynamicLocked(i)
	case !cs.rescinded:
		gc.rescindLocked(i)
	}
	return nil
}

// Remap returns a view of a GPADL this channel holds mapped already: a
// mapping restored from a saved state, which the server rebuilds this way
// (a saved state holds no mappings, only which GPADLs were mapped).
// ErrGpadlNotMapped if it is not mapped.
func (t *GpadlTable) Remap(id uint32, access guestmem.Access) (*guestmem.RangeView, error) {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.byID[id]
	if !ok || g.channelID != t.channelID || !g.mapped || g.state == gpadlAssembling {
		return nil, fmt.Errorf("%w: %#x", ErrGpadlNotMapped, id)
	}
	if g.readOnly && access != guestmem.ReadOnly {
		return nil, fmt.Errorf("%w: %#x", ErrGpadlReadOnly, id)
	}
	return s.mem.RangeView(g.ranges, access)
}

// Waiting lists the offers of the restored channels still waiting for
// their server to re-attach, by identity: what a successor did not take
// back, and gives up with Abandon rather than leave the guest on a
// channel nobody serves.
func (g *Guest) Waiting() []OfferSpec {
	gc := g.gc
	gc.mu.Lock()
	defer gc.mu.Unlock()
	var out []OfferSpec
	for i := range gc.chans {
		cs := &gc.chans[i]
		if cs.present && cs.waiting && !cs.rescinded && !cs.released {
			out = append(out, cs.spec)
		}
	}
	return out
}
