package hvsock

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DialTimeout bounds a relay's connect to its local socket.
const DialTimeout = 5 * time.Second

// Relay relays every guest connection to one service to a new connection
// to a local socket, both ways and half-close included, as Splice does.
// A guest connection whose local dial fails (DialTimeout) is closed in
// order: the guest reads the end of the stream without a byte, as from a
// socat relay that finds nothing behind it, and what it still sends until
// its own end is dropped. The connect itself
// has succeeded by then: the host offers the channel before the relay
// knows whether its local socket answers.
//
// A servicing carries its connections across (Pause, Carried, Restore).
type Relay struct {
	route  Route
	s      *Server
	l      *Listener
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	connector // Server.Connect's relays only

	// hold takes a pause's request to hold the accept loop (holdAccept);
	// release lets a held loop go on (ResumeAccept).
	hold    chan chan struct{}
	release chan struct{}
	// dialWait and guestWait bound a pause's waits: PauseDialWait and
	// PauseGuestWait.
	dialWait, guestWait time.Duration

	mu     sync.Mutex
	closed bool
	held   bool // the accept loop is held: what comes waits in the queue
	// dialing is the guest connections being relayed and not yet in
	// conns: true while their local dial (or, for a connect relay, the
	// guest's open) runs, false while a failed one drains.
	dialing map[HalfConn]bool
	dialed  sync.Cond // on mu: a dial ended
	conns   map[*relayed]struct{}
}

// Relay listens on r.Service and relays each connection to r's local
// socket until Close.
func (s *Server) Relay(r Route) (*Relay, error) {
	if r.Network != "unix" && r.Network != "tcp" {
		return nil, errors.New("hvsock: a relay's network is unix or tcp")
	}
	l, err := s.Listen(r.Service)
	if err != nil {
		return nil, err
	}
	rl := newRelay(s, r)
	rl.l = l
	rl.wg.Go(rl.accept)
	return rl, nil
}

func newRelay(s *Server, r Route) *Relay {
	ctx, cancel := context.WithCancel(context.Background())
	rl := &Relay{route: r, s: s, log: s.log, ctx: ctx, cancel: cancel,
		hold: make(chan chan struct{}), release: make(chan struct{}, 1), dialWait: PauseDialWait, guestWait: PauseGuestWait,
		dialing: make(map[HalfConn]bool), conns: make(map[*relayed]struct{})}
	rl.dialed.L = &rl.mu
	return rl
}

// Route is what the relay relays.
func (r *Relay) Route() Route { return r.route }

// Key names the relay in a servicing's state (ConnState.Route): the
// successor's relay of the same key takes its connections back.
func (r *Relay) Key() string {
	if r.IsConnect() {
		return connectString(r.route)
	}
	return r.route.String()
}

// accept takes the guests' connections until the listener closes. A
// pause holds it (holdAccept) between two connections, never between
// taking one from the queue and counting it among the dialing: so a
// pause that has its hold knows of every connection the loop took.
func (r *Relay) accept() {
	for {
		select {
		case c := <-r.l.queue:
			if !r.take(c) {
				return
			}
		case ack := <-r.hold:
			ok := r.drainQueue()
			close(ack)
			if !ok {
				return
			}
			select {
			case <-r.release:
			case <-r.l.done:
				return
			case <-r.ctx.Done():
				return
			}
		case <-r.l.done:
			return
		}
	}
}

// take starts relaying a guest connection taken from the listener's
// queue: its local dial runs on a goroutine of the relay's. False if the
// relay is closed (c is closed then).
func (r *Relay) take(c *Conn) bool {
	if !r.trackDial(c, true) {
		c.Close() //nolint:errcheck // the relay is closing
		return false
	}
	r.wg.Go(func() { r.serve(c) })
	return true
}

// drainQueue takes every connection waiting in the listener's queue, as
// the accept loop would; false if the relay is closed. Only the accept
// loop, or a pause while it is held, calls it.
func (r *Relay) drainQueue() bool {
	for {
		select {
		case c := <-r.l.queue:
			if !r.take(c) {
				return false
			}
		default:
			return true
		}
	}
}

// trackDial adds or removes a guest connection whose local dial runs,
// which Close resets; false if the relay is closed.
func (r *Relay) trackDial(c HalfConn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.dialing, c)
		r.dialed.Broadcast()
		return true
	}
	if r.closed {
		return false
	}
	r.dialing[c] = true
	return true
}

// dialFailed notes that c's dial failed: it stays among the dialing
// (Close resets it) while it drains, but a pause no longer waits for it.
func (r *Relay) dialFailed(c HalfConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.dialing[c]; ok {
		r.dialing[c] = false
		r.dialed.Broadcast()
	}
}

// addDialed moves c, dialed, from the dialing to the relayed as rc, in
// one step: a pause waiting for the dials finds it in one or the other.
// While a pause holds the relay, rc starts stopped: its flows park at
// once, and no byte moves until the servicing's end (once the bus is
// parked, a connection that ran to its end would be cleaned up under
// the successor's feet). False if the relay is closed (rc is not added).
func (r *Relay) addDialed(c HalfConn, rc *relayed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.dialing, c)
	r.dialed.Broadcast()
	if r.closed {
		return false
	}
	if r.held {
		rc.stopping.Store(true)
	}
	r.conns[rc] = struct{}{}
	return true
}

// testHookDial, if set, runs before each local dial of a guest
// connection: a test holds a dial in progress with it.
var testHookDial func()

// serve dials the local socket for gc and relays the two.
func (r *Relay) serve(gc *Conn) {
	if h := testHookDial; h != nil {
		h()
	}
	ctx, cancel := context.WithTimeout(r.ctx, DialTimeout)
	var d net.Dialer
	lc, err := d.DialContext(ctx, r.route.Network, r.route.Address)
	cancel()
	if err != nil {
		r.log.Warn("hvsock relay: local dial failed; the guest's connection is closed", "route", r.route.String(), "guest", gc.RemoteAddr().String(), "err", err)
		// In order: the guest reads the end of the stream, and what it
		// still sends is read and dropped until its own end, so that its
		// writes meet no reset (a Close at once rescinded the channel
		// under a guest still writing). Bounded by DialTimeout, and by
		// the relay's Close: the connection stays among the dialing.
		r.dialFailed(gc)
		gc.CloseWrite()                                 //nolint:errcheck // a guest gone makes the drain end at once
		gc.SetReadDeadline(time.Now().Add(DialTimeout)) //nolint:errcheck // set on a live Conn
		io.Copy(io.Discard, gc)                         //nolint:errcheck // dropped, whatever ends it
		r.trackDial(gc, false)
		gc.Close() //nolint:errcheck // both directions have ended
		return
	}
	rc := newRelayed(r, gc, lc.(HalfConn))
	if !r.addDialed(gc, rc) {
		rc.close()
		return
	}
	rc.run()
}

// add tracks rc until its end; false if the relay is closed.
func (r *Relay) add(rc *relayed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[rc] = struct{}{}
	return true
}

func (r *Relay) remove(rc *relayed) {
	r.mu.Lock()
	delete(r.conns, rc)
	r.mu.Unlock()
}

// Close stops listening, resets every relayed connection (both ends) and
// waits until they are down.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return net.ErrClosed
	}
	r.closed = true
	r.cancel()
	var cs []HalfConn
	for c := range r.dialing {
		cs = append(cs, c)
	}
	var rcs []*relayed
	for rc := range r.conns {
		rcs = append(rcs, rc)
	}
	r.mu.Unlock()
	if r.l != nil {
		r.l.Close() //nolint:errcheck // ours, once
	}
	r.closeLocal()
	for _, c := range cs {
		c.Close() //nolint:errcheck // a reset is the intent
	}
	for _, rc := range rcs {
		rc.close()
	}
	r.wg.Wait()
	return nil
}
