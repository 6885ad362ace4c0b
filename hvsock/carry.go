package hvsock

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/pipe"
	"github.com/govmbus/govmbus/protocol"
)

// A servicing host carries its relayed connections to its successor:
//
//	Relay.Pause      each connection's flows stop at a clean point, its
//	                 channel pauses (what the pipe held unread stays in it)
//	Carried.Save     the ConnState (channel state, the bytes on their way
//	                 both ways, the ends) and a duplicate of the local
//	                 socket, for the handover
//	Carried.Resume   the servicing failed before its handover: flow again
//	Relay.Restore    the successor: the channel restored and re-attached,
//	                 a new pipe on it with the ends as they were, the
//	                 saved bytes written first
//
// The channel's own state holds no packet of the connection: the pause
// completes what the pipe held, whose bytes the ConnState carries.

// saveChunkSize is the chunk size of a connection's channel save; the
// chunks are joined into ConnState.Channel.
const saveChunkSize = 64 << 10

// Carried is one relayed connection paused for a servicing.
type Carried struct {
	rc *relayed
	g  *host.Guest
}

// PauseDialWait bounds how long a pause waits for the connections whose
// local dial is in progress when it begins, and for opened connections on
// their way to the listener's queue: one that takes longer is not
// carried, and reads a reset.
const PauseDialWait = time.Second

// PauseGuestWait bounds a pause's waits on a guest: for a connect
// relay's connection the guest has yet to open, and for a guest to read a
// lingering connection's last bytes. A guest that does neither can make a
// servicing longer by this much, no more.
const PauseGuestWait = 100 * time.Millisecond

// Pause stops every connection of the relay at a clean point and pauses
// its channel, and returns those still open, for Save or Resume. A
// connection that ended or failed meanwhile is not among them; one whose
// channel does not pause is reset.
//
// Connections on their way in are carried too: the accept loop is held
// (ResumeAccept lets it go on) once it has taken every connection
// waiting in the listener's queue, and the pause waits for the local
// dials in progress, at most PauseDialWait. What the guests open after it
// waits in the queue for PauseLate. A connect relay stops accepting
// local connections first (HoldAccept) and waits for the guests' opens
// in progress the same way.
func (r *Relay) Pause() []*Carried {
	r.HoldAccept()
	r.holdAccept()
	wait := r.dialWait
	if r.IsConnect() {
		wait = r.guestWait // the guests' opens
	}
	if !r.waitDials(wait) {
		r.ranOut("dials", wait)
	}
	return r.pauseConns()
}

// PauseLate pauses what Pause left: the connections the guests opened
// since, waiting in the held listener's queue (or on their way to it),
// once their local dials are done (at most PauseDialWait each wait).
// First it waits, at most PauseGuestWait, for the connections that ended
// to have their last bytes read by the guest (Server's linger). A
// servicing calls it after the bus is parked (host.Host.SaveGuests), when
// no guest can open another; their channels then pause as a device's
// that came after the pause do. A connect relay has nothing left: it
// accepted no local connection since Pause.
func (r *Relay) PauseLate() []*Carried {
	// Connections that ended are not carried: the guest reads their
	// last bytes before the successor rescinds their channels.
	if !r.s.waitLingers(r.guestWait) {
		r.ranOut("lingering connections", r.guestWait)
	}
	if r.l == nil {
		return nil
	}
	r.mu.Lock()
	held := r.held
	r.mu.Unlock()
	if !held {
		return nil
	}
	// A connection the guest opened reaches the queue from its offer's
	// goroutine, a moment after the open.
	if !r.s.waitDelivered(r.l.service, r.dialWait) {
		r.ranOut("opened connections on their way", r.dialWait)
	}
	if !r.drainQueue() {
		return nil
	}
	if !r.waitDials(r.dialWait) {
		r.ranOut("dials", r.dialWait)
	}
	return r.pauseConns()
}

// holdAccept holds a listen relay's accept loop for a pause, once the
// loop has taken every connection waiting in the listener's queue.
func (r *Relay) holdAccept() {
	if r.l == nil {
		return
	}
	r.mu.Lock()
	if r.held || r.closed {
		r.mu.Unlock()
		return
	}
	r.held = true
	r.mu.Unlock()
	ack := make(chan struct{})
	select {
	case r.hold <- ack:
		<-ack
	case <-r.l.done:
	case <-r.ctx.Done():
	}
}

// waitDials waits until no dial is in progress, or d has passed; false
// if it ran out.
func (r *Relay) waitDials(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return waitUntil(&r.dialed, d, func() bool { return !dialsRunning(r.dialing) })
}

// ranOut logs a pause's wait that ran out: a connection it waited for is
// not carried.
func (r *Relay) ranOut(what string, after time.Duration) {
	r.log.Warn("hvsock relay: a pause's wait ran out", "route", r.Key(), "for", what, "after", after)
}

func dialsRunning(dialing map[HalfConn]bool) bool {
	for _, running := range dialing {
		if running {
			return true
		}
	}
	return false
}

// pauseConns pauses every relayed connection not paused yet.
func (r *Relay) pauseConns() []*Carried {
	r.mu.Lock()
	rcs := make([]*relayed, 0, len(r.conns))
	for rc := range r.conns {
		if !rc.parked {
			rcs = append(rcs, rc)
		}
	}
	r.mu.Unlock()
	var out []*Carried
	for _, rc := range rcs {
		if !rc.stop() {
			continue
		}
		if err := rc.gc.host.ch.Pause(); err != nil {
			r.log.Info("hvsock relay: connection not paused: reset", "route", r.route.String(), "err", err)
			rc.close()
			continue
		}
		r.mu.Lock()
		rc.parked = true
		r.mu.Unlock()
		out = append(out, &Carried{rc: rc, g: rc.gc.host.guest})
	}
	return out
}

// Guest is the connection's guest.
func (c *Carried) Guest() *host.Guest { return c.g }

// Save returns the paused connection's state and a duplicate of its
// local socket (close-on-exec; the caller hands it over, or closes it).
// It changes nothing: Resume may follow.
func (c *Carried) Save() (*ConnState, *os.File, error) {
	rc := c.rc
	b, err := saveChannel(rc.gc.host.ch)
	if err != nil {
		return nil, nil, err
	}
	st := &ConnState{
		Route: rc.r.Key(), Service: rc.gc.host.service, Endpoint: rc.gc.host.endpoint, ForGuestAccept: rc.gc.host.forGuestAccept,
		Channel:   b,
		LocalShut: rc.toLocal.shut, GuestEnded: rc.toLocal.eof,
		GuestShut: rc.toGuest.shut, LocalEnded: rc.toGuest.eof,
		ToGuest: bytes.Clone(rc.toGuest.pending()),
	}
	var fin bool
	st.ToLocal, fin = rc.gc.host.pipe.Unread(bytes.Clone(rc.toLocal.pending()))
	st.GuestEnded = st.GuestEnded || fin
	if len(st.ToLocal) > MaxCarriedToLocal {
		return nil, nil, fmt.Errorf("hvsock: a connection holds %d bytes from the guest, at most %d", len(st.ToLocal), MaxCarriedToLocal)
	}
	f, ok := rc.local.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, nil, fmt.Errorf("hvsock: a local socket of type %T cannot be handed over", rc.local)
	}
	file, err := f.File()
	if err != nil {
		return nil, nil, err
	}
	return st, file, nil
}

// Check reports whether the paused connection's state fits a ConnState
// (MaxCarriedToLocal): a servicing checks every connection before it saves
// anything, and gives up (resuming them all) rather than save a state
// without one of them.
func (c *Carried) Check() error {
	rc := c.rc
	n := len(rc.toLocal.pending()) + rc.gc.host.pipe.UnreadLen()
	if n > MaxCarriedToLocal {
		return fmt.Errorf("hvsock: a connection of guest %d holds %d bytes from the guest, at most %d carried", c.g.ID(), n, MaxCarriedToLocal)
	}
	return nil
}

// Resume lets the connection flow again after a servicing that failed
// before its handover.
func (c *Carried) Resume() {
	c.rc.gc.host.ch.Start() //nolint:errcheck // a channel closed meanwhile resets the flows, which end then
	c.rc.resume()
}

// Relinquish ends the channel's receive goroutine before a spawned
// successor takes the channel over (channel.ServicingView.Relinquish).
func (c *Carried) Relinquish() {
	c.rc.gc.host.ch.Servicing().Relinquish() //nolint:errcheck // a channel not open has no goroutine to end
}

// Drop forgets the connection in this process once a successor took it
// over, telling neither end: call it after the host was closed (a closed
// host's channels send the guest nothing). The local socket stays open
// in the successor's duplicate.
func (c *Carried) Drop() {
	c.rc.close()
}

// Restore takes back a connection a predecessor's Carried.Save gave, on
// g's channel restored from the bus state: the channel is restored and
// started, and the flows go on from the saved bytes and ends, with local
// (the handed-over socket; Restore takes it whatever the outcome) as the
// local side.
func (r *Relay) Restore(g *host.Guest, st *ConnState, local *os.File) error {
	lc, err := net.FileConn(local)
	local.Close()
	if err != nil {
		return fmt.Errorf("hvsock: the relay's local socket: %w", err)
	}
	lh, ok := lc.(HalfConn)
	if !ok {
		lc.Close()
		return fmt.Errorf("hvsock: a local socket of type %T", lc)
	}
	gc, err := r.s.restoreConn(g, st)
	if err != nil {
		lc.Close()
		return err
	}
	rc := newRelayed(r, gc, lh)
	rc.toLocal.eof, rc.toLocal.shut = st.GuestEnded, st.LocalShut
	rc.toGuest.eof, rc.toGuest.shut = st.LocalEnded, st.GuestShut
	if len(st.ToLocal) > len(rc.toLocal.buf) {
		rc.toLocal.buf = make([]byte, len(st.ToLocal))
	}
	rc.toLocal.hi = copy(rc.toLocal.buf, st.ToLocal)
	rc.toGuest.hi = copy(rc.toGuest.buf, st.ToGuest)
	if !r.add(rc) {
		rc.close()
		return net.ErrClosed
	}
	r.wg.Go(rc.run)
	return nil
}

// restoreConn rebuilds a connection's host end on g's channel restored
// from st: configured as it was offered, restored, re-attached, its pipe
// told which ends were passed, and started.
func (s *Server) restoreConn(g *host.Guest, st *ConnState) (*Conn, error) {
	release, err := s.admit(g, false)
	if err != nil {
		return nil, err
	}
	ev := newEvents()
	// Started only once its pipe knows which ends were passed.
	var ch *channel.Channel
	var str stream
	if st.Channel == nil {
		err = errors.New("no channel state")
	} else {
		ch, str, err = s.enableChannel(g, st.Service, st.Endpoint, st.ForGuestAccept, st.Channel, ev)
	}
	if err != nil {
		release()
		s.wg.Done()
		return nil, fmt.Errorf("hvsock: restore a connection of guest %d: %w", g.ID(), err)
	}
	local, remote := st.addrs(g)
	p := str.(pipeStream).Conn
	p.Restored(st.GuestEnded, st.GuestShut)
	he := &hostEnd{ch: ch, pipe: p, guest: g, service: st.Service, endpoint: st.Endpoint, forGuestAccept: st.ForGuestAccept}
	var c *Conn
	c = newConn(str, local, remote, func() {
		s.linger(ch, ev.closed)
		ch.Cleanup() //nolint:errcheck // rescinds
		release()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}, false, s.spawn)
	c.host = he
	c.eof, c.finSent = st.GuestEnded, st.GuestShut
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		select {
		case <-ev.closed:
			c.goDown()
		case <-c.down:
		}
	}()
	if err := ch.Start(); err != nil {
		c.Close() //nolint:errcheck // the first error matters
		return nil, fmt.Errorf("hvsock: start a restored connection of guest %d: %w", g.ID(), err)
	}
	return c, nil
}

// hostEnd is what a servicing needs of a host's connection: its channel,
// pipe and offer.
type hostEnd struct {
	ch                *channel.Channel
	pipe              *pipe.Conn
	guest             *host.Guest
	service, endpoint protocol.GUID
	forGuestAccept    bool
}

// Conns is the number of connections the relay relays now.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}
