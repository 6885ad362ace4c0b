package hvsock

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DialTimeout bounds a relay's connect to its local socket.
const DialTimeout = 5 * time.Second

// Relay relays every guest connection to one service to a new connection
// to a local socket, both ways and half-close included (Splice). A guest
// connection whose local dial fails (DialTimeout) is closed at once, in
// order: the guest reads the end of the stream without a byte, as from a
// socat relay that finds nothing behind it. The connect itself has
// succeeded by then: the host offers the channel before the relay knows
// whether its local socket answers.
type Relay struct {
	route  Route
	l      *Listener
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[HalfConn]struct{}
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
	ctx, cancel := context.WithCancel(context.Background())
	rl := &Relay{route: r, l: l, log: s.log, ctx: ctx, cancel: cancel, conns: make(map[HalfConn]struct{})}
	rl.wg.Go(rl.accept)
	return rl, nil
}

// Route is what the relay relays.
func (r *Relay) Route() Route { return r.route }

// accept takes the guests' connections until the listener closes.
func (r *Relay) accept() {
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		gc := c.(*Conn)
		if !r.track(gc, true) {
			gc.Close() //nolint:errcheck // the relay is closing
			return
		}
		r.wg.Go(func() { r.serve(gc) })
	}
}

// track adds or removes a connection Close resets; false if the relay
// is closed.
func (r *Relay) track(c HalfConn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

// serve dials the local socket for gc and splices the two.
func (r *Relay) serve(gc *Conn) {
	defer r.track(gc, false)
	ctx, cancel := context.WithTimeout(r.ctx, DialTimeout)
	var d net.Dialer
	lc, err := d.DialContext(ctx, r.route.Network, r.route.Address)
	cancel()
	if err != nil {
		r.log.Warn("hvsock relay: local dial failed; the guest's connection is closed", "route", r.route.String(), "guest", gc.RemoteAddr().String(), "err", err)
		gc.Close() //nolint:errcheck // the guest reads a reset
		return
	}
	local := lc.(HalfConn)
	if !r.track(local, true) {
		local.Close() //nolint:errcheck // the relay is closing
		gc.Close()    //nolint:errcheck // the relay is closing
		return
	}
	defer r.track(local, false)
	if err := Splice(gc, local); err != nil {
		r.log.Info("hvsock relay: connection reset", "route", r.route.String(), "guest", gc.RemoteAddr().String(), "err", err)
	}
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
	cs := make([]HalfConn, 0, len(r.conns))
	for c := range r.conns {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	r.l.Close() //nolint:errcheck // ours, once
	for _, c := range cs {
		c.Close() //nolint:errcheck // a reset is the intent
	}
	r.wg.Wait()
	return nil
}
