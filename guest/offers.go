package guest

import (
	"context"
	"sort"

	"github.com/govmbus/govmbus/protocol"
)

// Offer is a channel the host offered.
type Offer struct {
	ChannelID, ConnectionID          uint32
	InterfaceType, InterfaceInstance protocol.GUID
	SubchannelIndex                  uint16
	Flags                            protocol.OfferFlags
	MMIOMegabytes                    uint16
	UserDefined                      protocol.UserDefined
	MonitorAllocated                 bool
}

func (cl *Client) addOffer(m *protocol.OfferChannel) {
	if !protocol.ValidChannelID(m.ChannelID) {
		return // a host's bad offer is ignored
	}
	o := Offer{
		ChannelID:         m.ChannelID,
		ConnectionID:      m.ConnectionID,
		InterfaceType:     m.InterfaceType,
		InterfaceInstance: m.InterfaceInstance,
		SubchannelIndex:   m.SubchannelIndex,
		Flags:             m.Flags,
		MMIOMegabytes:     m.MMIOMegabytes,
		UserDefined:       m.UserDefined,
		MonitorAllocated:  m.MonitorAllocated,
	}
	cl.mu.Lock()
	cl.offers[o.ChannelID] = o
	delete(cl.gone, o.ChannelID)
	close(cl.offerChange)
	cl.offerChange = make(chan struct{})
	cl.mu.Unlock()
}

// askOffers sends RequestOffers once per client.
func (cl *Client) askOffers() error {
	cl.mu.Lock()
	asked := cl.offersAsked
	cl.offersAsked = true
	cl.mu.Unlock()
	if asked {
		return nil
	}
	return cl.send(&protocol.RequestOffers{})
}

// RequestOffers asks the host for its offers (once per client; later calls
// wait for the same answer) and returns the offers not rescinded, by channel
// id, once AllOffersDelivered has arrived.
func (cl *Client) RequestOffers(ctx context.Context) ([]Offer, error) {
	if err := cl.askOffers(); err != nil {
		return nil, err
	}
	select {
	case <-cl.allOffers:
	case <-cl.done:
		return nil, cl.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	out := make([]Offer, 0, len(cl.offers))
	for _, o := range cl.offers {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChannelID < out[j].ChannelID })
	return out, nil
}

// WaitOffer requests offers if nobody has yet and waits for one of
// interface type typ and instance instance (the zero GUID matches any
// instance), returning the one with the lowest channel id.
func (cl *Client) WaitOffer(ctx context.Context, typ, instance protocol.GUID) (Offer, error) {
	return cl.WaitOfferMatch(ctx, func(o Offer) bool {
		return o.InterfaceType == typ && (instance.IsZero() || o.InterfaceInstance == instance)
	})
}

// WaitOfferMatch requests offers if nobody has yet and waits for an offer
// for which match returns true, returning the one with the lowest channel
// id. match is called with the client's lock held: it must only look at
// the offer.
func (cl *Client) WaitOfferMatch(ctx context.Context, match func(Offer) bool) (Offer, error) {
	if err := cl.askOffers(); err != nil {
		return Offer{}, err
	}
	for {
		cl.mu.Lock()
		var best Offer
		found := false
		for _, o := range cl.offers {
			if match(o) && (!found || o.ChannelID < best.ChannelID) {
				best, found = o, true
			}
		}
		change := cl.offerChange
		cl.mu.Unlock()
		if found {
			return best, nil
		}
		select {
		case <-change:
		case <-cl.done:
			return Offer{}, cl.closedErr()
		case <-ctx.Done():
			return Offer{}, ctx.Err()
		}
	}
}

// Offered reports whether o is still offered: the client has an offer of
// o's channel id, interface type and instance, not rescinded since. A
// caller waiting for something of o's channel (its open) learns from it
// that the wait is in vain.
func (cl *Client) Offered(o Offer) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cur, ok := cl.offers[o.ChannelID]
	return ok && cur.InterfaceType == o.InterfaceType && cur.InterfaceInstance == o.InterfaceInstance
}

// rescind forgets a rescinded offer, fails an open in progress and answers
// RelIdReleased unless the channel is open (then Channel.Close does).
func (cl *Client) rescind(id uint32) {
	cl.mu.Lock()
	o, ok := cl.offers[id]
	if !ok {
		cl.mu.Unlock()
		return
	}
	cl.connectRescinded(&o)
	delete(cl.offers, id)
	cl.gone[id] = false
	ch, open := cl.channels[id]
	if open && !ch.rescindSet {
		ch.rescindSet = true
		close(ch.rescinded)
	}
	k := waitKey{protocol.TypeOpenChannelResult, id}
	w, opening := cl.waiters[k]
	delete(cl.waiters, k)
	close(cl.offerChange)
	cl.offerChange = make(chan struct{})
	cl.mu.Unlock()
	if opening {
		w <- nil // the opener sees ErrRescinded and releases the id
	}
	select {
	case cl.rescinded <- id:
	default:
	}
	if !open && !opening {
		cl.release(id)
	}
}

// release answers a rescind with RelIdReleased, once per rescind: an id
// released already (a channel opened from an offer listed before its
// rescind) is not released again.
func (cl *Client) release(id uint32) {
	cl.mu.Lock()
	released, rescinded := cl.gone[id]
	if rescinded {
		cl.gone[id] = true
	}
	cl.mu.Unlock()
	if rescinded && !released {
		cl.send(&protocol.RelIDReleased{ChannelID: id}) //nolint:errcheck // the connection is going away if it fails
	}
}
