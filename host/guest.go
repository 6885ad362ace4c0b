package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/govmbus/govmbus/protocol"
)

// Errors of Guest.Offer.
var (
	// ErrGuestGone: the guest connection has ended (or the host is
	// shutting down): nothing can be offered to it any more.
	ErrGuestGone = errors.New("host: guest connection gone")
	// ErrOfferExists: the guest already has an offer with that interface
	// type, instance and subchannel index.
	ErrOfferExists = errors.New("host: offer exists")
	// ErrNoChannelID: every channel id of the guest is in use.
	ErrNoChannelID = errors.New("host: no free channel id")
)

// Guest is one guest connection as Config.OnGuest sees it: a handle to
// offer it channels at run time, beside the devices of Config.Devices
// that every guest gets. It is what a KMCL server channel names as "its
// VM".
//
// Its methods are safe for concurrent use.
type Guest struct {
	gc *guestConn
}

// ID is the host's number for the guest connection (host.Channel.GuestID):
// unique while the host runs, and kept by Restore (SavedGuest.ID), so
// that a guest has the same number before and after a servicing.
func (g *Guest) ID() uint64 { return g.gc.id }

// Done is closed when the guest connection has ended and every channel
// of it was closed.
func (g *Guest) Done() <-chan struct{} { return g.gc.done }

// Offered is one offer Guest.Offer made.
type Offered struct {
	gc        *guestConn
	channelID uint32
	released  chan struct{} // closed when the entry is removed
}

// ChannelID is the channel id the offer carries.
func (o *Offered) ChannelID() uint32 { return o.channelID }

// Offer offers dev's channel to this guest alone. Before the guest asked
// for offers, the offer joins the list RequestOffers answers with; after,
// it is sent at once as an OfferChannel. Its channel id is the lowest one
// after Config.Devices' that no other offer of this guest holds.
//
// dev.Offer is called once, here. dev's Open and Close are then called as
// for any device, from the guest's control-plane goroutine.
func (g *Guest) Offer(dev Device) (*Offered, error) {
	gc := g.gc
	spec := dev.Offer()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	select {
	case <-gc.done:
		return nil, ErrGuestGone
	default:
	}
	if gc.shuttingDown || gc.cleanedUp {
		return nil, ErrGuestGone
	}
	free := -1
	for i := range gc.chans {
		cs := &gc.chans[i]
		if !cs.present {
			if free < 0 && i >= len(gc.h.offers) {
				free = i
			}
			continue
		}
		if !cs.released && !cs.rescinded && !offerLess(&cs.spec, &spec) && !offerLess(&spec, &cs.spec) {
			return nil, fmt.Errorf("%w: %v/%v subchannel %d", ErrOfferExists, spec.InterfaceType, spec.InterfaceInstance, spec.SubchannelIndex)
		}
	}
	if free < 0 {
		if len(gc.chans) >= protocol.MaxChannelID {
			return nil, ErrNoChannelID
		}
		gc.chans = append(gc.chans, chanState{})
		free = len(gc.chans) - 1
	}
	id := uint32(free + 1)
	o := &Offered{gc: gc, channelID: id, released: make(chan struct{})}
	gc.chans[free] = chanState{
		present: true,
		spec:    spec,
		dev:     dev,
		connID:  protocol.ChannelConnectionID(id, protocol.MessageSINT, 0),
		dynamic: o,
	}
	if gc.offersSent {
		gc.sendOffer(free)
		gc.log.Info("channel offered", "channel", id)
	}
	return o, nil
}

// Rescind withdraws the offer. Before the guest asked for offers it is
// simply dropped. After, an open channel is closed first (Device.Close),
// RescindChannelOffer is sent, and Rescind waits until the guest answers
// RelIdReleased, the guest goes away, or ctx ends (then ctx.Err(); the
// rescind stays under way). Rescinding an offer that is gone already
// returns nil. On a restored guest before Host.Resume, which starts its
// control plane, it returns once the rescind is sent: the guest's answer
// is read only from then on.
func (o *Offered) Rescind(ctx context.Context) error {
	gc := o.gc
	gc.mu.Lock()
	i := int(o.channelID - 1)
	if i >= len(gc.chans) || gc.chans[i].dynamic != o {
		gc.mu.Unlock()
		return nil
	}
	if gc.detached {
		// Saved for a successor, which keeps the offer.
		gc.mu.Unlock()
		return nil
	}
	cs := &gc.chans[i]
	switch {
	case !gc.offersSent || cs.released:
		gc.removeDynamicLocked(i)
	case !cs.rescinded:
		gc.rescindLocked(i)
	}
	if gc.unresumed {
		// Nothing reads the guest's RelIdReleased before Resume, and a
		// successor gives up a channel it cannot restore before it
		// resumes; Resume arms the release timer.
		gc.mu.Unlock()
		return nil
	}
	gc.mu.Unlock()
	select {
	case <-o.released:
		return nil
	case <-gc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rescindLocked closes channel index i if open, marks it rescinded and
// tells the guest. Must hold mu.
func (gc *guestConn) rescindLocked(i int) {
	cs := &gc.chans[i]
	if cs.open != nil {
		gc.closeChannelLocked(i, "rescind")
	}
	cs.rescinded, cs.rescindedAt = true, time.Now()
	gc.armReleaseTimerLocked(gc.h.limits.ReleaseTimeout)
	gc.send(&protocol.RescindChannelOffer{ChannelID: uint32(i + 1)})
}

// removeDynamicLocked forgets the Guest.Offer entry at index i and wakes
// its Rescind. Must hold mu.
func (gc *guestConn) removeDynamicLocked(i int) {
	cs := &gc.chans[i]
	if cs.open != nil {
		gc.closeChannelLocked(i, "offer removed")
	}
	if o := cs.dynamic; o != nil {
		close(o.released)
	}
	gc.connectDoneLocked(&cs.spec)
	gc.chans[i] = chanState{}
	gc.gpadls.dropChannel(uint32(i + 1))
}
