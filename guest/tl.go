package guest

import (
	"context"
	"fmt"

	"github.com/govmbus/govmbus/protocol"
)

// IsHVSockOffer reports whether o is an hvsock connection's channel: the
// TLNPI provider flag, which is how Linux recognises them (DEVICES.md
// §2.4).
func (o *Offer) IsHVSockOffer() bool { return o.Flags&protocol.OfferFlagTLNPIProvider != 0 }

// Connect asks the host to connect req.EndpointID to the host service
// req.ServiceID (TlConnectRequest, protocol 4.0 and later) and waits for
// the answer: the offer of the connection's channel (interface type the
// service, instance the endpoint, not for guest accept), which the caller
// then opens, or a refusal, a *StatusError of Op "connect" (hosts of 4.1
// and later send one; older ones say nothing, and Connect waits for ctx).
// It requests offers first if nobody has.
func (cl *Client) Connect(ctx context.Context, req protocol.TLConnectRequest) (Offer, error) {
	if cl.version < protocol.TypeTLConnectRequest.MinVersion() {
		return Offer{}, fmt.Errorf("guest: connect needs protocol 4.0, have %v", cl.version)
	}
	if err := cl.askOffers(); err != nil {
		return Offer{}, err
	}
	w := &tlWaiter{service: req.ServiceID, status: make(chan uint32, 1), gone: make(chan struct{})}
	cl.mu.Lock()
	if cl.err != nil {
		cl.mu.Unlock()
		return Offer{}, cl.err
	}
	if _, busy := cl.tlWaiters[req.EndpointID]; busy {
		cl.mu.Unlock()
		return Offer{}, fmt.Errorf("guest: endpoint %v is connecting already", req.EndpointID)
	}
	cl.tlWaiters[req.EndpointID] = w
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		if cl.tlWaiters[req.EndpointID] == w {
			delete(cl.tlWaiters, req.EndpointID)
		}
		cl.mu.Unlock()
	}()
	if err := cl.send(&req); err != nil {
		return Offer{}, err
	}
	match := func(o *Offer) bool {
		return o.IsHVSockOffer() && o.InterfaceType == req.ServiceID && o.InterfaceInstance == req.EndpointID &&
			!o.UserDefined.HVSock().ForGuestAccept
	}
	for {
		cl.mu.Lock()
		var best Offer
		found := false
		for _, o := range cl.offers {
			if match(&o) && (!found || o.ChannelID < best.ChannelID) {
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
		case status := <-w.status:
			return Offer{}, &StatusError{Op: "connect", Status: status}
		case <-w.gone:
			return Offer{}, ErrRescinded
		case <-cl.done:
			return Offer{}, cl.closedErr()
		case <-ctx.Done():
			return Offer{}, ctx.Err()
		}
	}
}

// tlWaiter is a Connect waiting for its answer.
type tlWaiter struct {
	service protocol.GUID
	status  chan uint32
	gone    chan struct{} // closed when the connection's offer is rescinded
}

// connectRescinded tells the Connect waiting for o, if any, that the host
// rescinded it, perhaps before Connect saw it: else Connect would wait
// for an offer that will not come again. Must hold cl.mu.
func (cl *Client) connectRescinded(o *Offer) {
	if !o.IsHVSockOffer() || o.UserDefined.HVSock().ForGuestAccept {
		return
	}
	w, ok := cl.tlWaiters[o.InterfaceInstance]
	if !ok || w.service != o.InterfaceType {
		return
	}
	select {
	case <-w.gone:
	default:
		close(w.gone)
	}
}

// connectResult hands a TlConnectRequestResult to the Connect that waits
// for it; one nobody waits for (late, or for another service) is dropped.
func (cl *Client) connectResult(m *protocol.TLConnectRequestResult) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	w, ok := cl.tlWaiters[m.EndpointID]
	if !ok || w.service != m.ServiceID {
		return
	}
	select {
	case w.status <- m.Status:
	default:
	}
}
