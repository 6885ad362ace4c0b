package hvsock

import (
	"fmt"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
)

// PendingConn is a connection a guest asked a listen relay's service
// for, whose channel the host offered and the guest had not opened when
// the bus parked for a servicing: the successor offers it on (the same
// channel, restored) and waits for the open, instead of rescinding it.
type PendingConn struct {
	r *Relay
	p *pending
}

// PauseOffers pauses the channels the relay's service has offered and
// the guests have not opened, for a servicing: call it once the bus is
// parked (no guest can open one any more), after PauseLate. Their open
// timeouts run on in this process; a channel rescinded meanwhile fails
// its Save.
func (r *Relay) PauseOffers() []*PendingConn {
	if r.l == nil {
		return nil
	}
	r.s.mu.Lock()
	var ps []*pending
	for _, p := range r.s.offering {
		if p.service == r.l.service && !p.forGuestAccept {
			ps = append(ps, p)
		}
	}
	r.s.mu.Unlock()
	var out []*PendingConn
	for _, p := range ps {
		// A channel's state is read without the server's lock.
		if p.ch.State() != channel.StateStarted {
			continue // opened: PauseLate's, or gone
		}
		if err := p.ch.Pause(); err != nil {
			r.log.Info("hvsock relay: an offered connection not paused: rescinded by the successor", "route", r.Key(), "err", err)
			continue
		}
		out = append(out, &PendingConn{r: r, p: p})
	}
	return out
}

// Guest is the connection's guest.
func (pc *PendingConn) Guest() *host.Guest { return pc.p.g }

// Save returns the offer's state: the route, service and endpoint, and
// its channel's state. There is no local socket yet, nor bytes.
func (pc *PendingConn) Save() (*ConnState, error) {
	b, err := saveChannel(pc.p.ch)
	if err != nil {
		return nil, err
	}
	return &ConnState{Route: pc.r.Key(), Service: pc.p.service, Endpoint: pc.p.endpoint, Channel: b}, nil
}

// RestorePending takes back an offer a predecessor's PendingConn.Save
// gave, on g's channel restored from the bus state: the channel is
// restored and started, and once the guest opens it the connection goes
// to the relay's listener like any other, within a new OpenTimeout.
func (r *Relay) RestorePending(g *host.Guest, st *ConnState) error {
	if r.l == nil || st.ForGuestAccept || st.Service != r.l.service {
		return fmt.Errorf("hvsock: an offer for %v is not this relay's", st.Service)
	}
	s := r.s
	release, err := s.admit(g, false)
	if err != nil {
		return err
	}
	ev := newEvents()
	ch, str, err := s.startChannel(g, st.Service, st.Endpoint, false, st.Channel, ev)
	if err != nil {
		release()
		s.wg.Done()
		return fmt.Errorf("hvsock: restore an offered connection of guest %d: %w", g.ID(), err)
	}
	local, remote := st.addrs(g)
	s.await(&pending{g: g, ch: ch, st: str, ev: ev, service: st.Service, endpoint: st.Endpoint,
		local: local, remote: remote, ready: r.l.deliver, release: release})
	return nil
}
