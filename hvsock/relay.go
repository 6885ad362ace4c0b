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

	mu      sync.Mutex
	closed  bool
	dialing map[HalfConn]struct{} // guest connections whose local dial runs
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
	return &Relay{route: r, s: s, log: s.log, ctx: ctx, cancel: cancel, dialing: make(map[HalfConn]struct{}), conns: make(map[*relayed]struct{})}
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

// accept takes the guests' connections until the listener closes.
func (r *Relay) accept() {
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		gc := c.(*Conn)
		if !r.trackDial(gc, true) {
			gc.Close() //nolint:errcheck // the relay is closing
			return
		}
		r.wg.Go(func() { r.serve(gc) })
	}
}

// trackDial adds or removes a guest connection whose local dial runs,
// which Close resets; false if the relay is closed.
func (r *Relay) trackDial(c HalfConn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.dialing, c)
		return true
	}
	if r.closed {
		return false
	}
	r.dialing[c] = struct{}{}
	return true
}

// serve dials the local socket for gc and relays the two.
func (r *Relay) serve(gc *Conn) {
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
		gc.CloseWrite()                                 //nolint:errcheck // a guest gone makes the drain end at once
		gc.SetReadDeadline(time.Now().Add(DialTimeout)) //nolint:errcheck // set on a live Conn
		io.Copy(io.Discard, gc)                         //nolint:errcheck // dropped, whatever ends it
		r.trackDial(gc, false)
		gc.Close() //nolint:errcheck // both directions have ended
		return
	}
	r.trackDial(gc, false)
	rc := newRelayed(r, gc, lc.(HalfConn))
	if !r.add(rc) {
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
