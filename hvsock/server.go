package hvsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// Default limits of a Server.
const (
	DefaultMaxConnsPerGuest = 64
	DefaultMaxBuffered      = 256 << 10
	DefaultBacklog          = 16
	DefaultOpenTimeout      = 5 * time.Second
)

// ErrServerClosed is returned by a Server's and its listeners' calls after
// Close.
var ErrServerClosed = errors.New("hvsock: server closed")

// Config configures a Server.
type Config struct {
	// Logger gets a line per connection refused (Debug: a flooding
	// guest makes one per request) and per offer rescinded unopened
	// (Info); nil discards.
	Logger *slog.Logger
	// MaxConnsPerGuest bounds one guest's connections, open or being
	// made, both ways: a connect beyond it is refused, a Dial fails with
	// ErrLimit. Default 64.
	MaxConnsPerGuest int
	// MaxBuffered bounds the bytes a connection receives ahead of its
	// reader (the pipe's receive bound): a peer that writes more waits
	// for ring space. Default 256 KiB.
	MaxBuffered int
	// Backlog bounds a listener's connections opened and not yet
	// accepted; a connect beyond it is refused. Default 16.
	Backlog int
	// OpenTimeout is how long the host waits for the guest to open a
	// connection's channel it offered; then it rescinds the offer, as
	// OpenVMM does. Default 5 s.
	OpenTimeout time.Duration
	// LingerTimeout bounds how long the host waits, when it ends a
	// connection in order (Close, or both directions ended), for the
	// guest to read what is still in the ring before it rescinds the
	// channel. Default 8 s (DefaultLingerTimeout).
	LingerTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxConnsPerGuest <= 0 {
		c.MaxConnsPerGuest = DefaultMaxConnsPerGuest
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = DefaultMaxBuffered
	}
	if c.Backlog <= 0 {
		c.Backlog = DefaultBacklog
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.LingerTimeout <= 0 {
		c.LingerTimeout = DefaultLingerTimeout
	}
	return c
}

// Server is the host's end of Hyper-V sockets for every guest of a host:
// its OnConnect goes into host.Config.OnConnect, its listeners accept the
// guests' connections and its Dial connects to a guest's listener.
//
// Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	done chan struct{} // closed by Close
	// ctx ends at Close: the lingers of connections end with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	listeners map[protocol.GUID]*Listener
	perGuest  map[*host.Guest]int
	conns     map[*Conn]struct{}
	// offering is the channels offered and not yet handed to their
	// listener or dialer (or failed), by service; delivered is signalled,
	// and deliveries counted, as they leave it.
	offering   map[*channel.Channel]*pending
	delivered  sync.Cond
	deliveries uint64
	// lingering counts the connections closed in order whose guest is
	// still reading what the host wrote (linger); lingered is signalled
	// as each ends.
	lingering int
	lingered  sync.Cond
}

// NewServer makes a Server with cfg's limits.
func NewServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		ctx:       ctx,
		cancel:    cancel,
		cfg:       cfg,
		log:       cfg.Logger,
		done:      make(chan struct{}),
		listeners: make(map[protocol.GUID]*Listener),
		perGuest:  make(map[*host.Guest]int),
		conns:     make(map[*Conn]struct{}),
		offering:  make(map[*channel.Channel]*pending),
	}
	s.delivered.L = &s.mu
	s.lingered.L = &s.mu
	return s
}

// Listener accepts guests' connections to one service.
type Listener struct {
	s       *Server
	service protocol.GUID
	queue   chan *Conn
	done    chan struct{}
	once    sync.Once
}

// Listen listens for guests' connections to service.
func (s *Server) Listen(service protocol.GUID) (*Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if _, ok := s.listeners[service]; ok {
		return nil, fmt.Errorf("hvsock: service %v has a listener", service)
	}
	l := &Listener{s: s, service: service, queue: make(chan *Conn, s.cfg.Backlog), done: make(chan struct{})}
	s.listeners[service] = l
	return l, nil
}

// Addr is the wildcard VM and the service.
func (l *Listener) Addr() net.Addr { return Addr{VMID: VMIDWildcard, ServiceID: l.service} }

// Accept waits for a guest's connection, opened.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.done:
		return nil, opError("accept", l.Addr(), nil, net.ErrClosed)
	}
}

// Close stops listening; connections not accepted are closed. Accept
// returns net.ErrClosed.
func (l *Listener) Close() error {
	first := false
	l.once.Do(func() {
		first = true
		l.s.mu.Lock()
		if l.s.listeners[l.service] == l {
			delete(l.s.listeners, l.service)
		}
		close(l.done)
		l.s.mu.Unlock()
	})
	if !first {
		return opError("close", l.Addr(), nil, net.ErrClosed)
	}
	for {
		select {
		case c := <-l.queue:
			c.Close() //nolint:errcheck // never accepted
		default:
			return nil
		}
	}
}

// OnConnect is the host.Config.OnConnect of this server: a guest's
// connect to a service with a listener gets the connection's channel
// offered (interface type the service, instance the guest's endpoint);
// anything else is refused. It does not wait for the guest.
func (s *Server) OnConnect(g *host.Guest, req protocol.TLConnectRequest) error {
	if !req.SiloID.IsZero() {
		return fmt.Errorf("%w: silo %v", ErrRefused, req.SiloID)
	}
	s.mu.Lock()
	l := s.listeners[req.ServiceID]
	s.mu.Unlock()
	if l == nil {
		return ErrRefused
	}
	if len(l.queue) == cap(l.queue) {
		return fmt.Errorf("%w: backlog of %v full", ErrLimit, req.ServiceID)
	}
	local := Addr{VMID: VMIDWildcard, ServiceID: req.ServiceID}
	remote := Addr{VMID: GuestVMID(g.ID()), ServiceID: req.EndpointID}
	return s.offer(g, req.ServiceID, req.EndpointID, false, local, remote, l.deliver, nil)
}

// deliver puts c, opened, in the listener's queue for Accept; a full
// queue closes it.
func (l *Listener) deliver(c *Conn) {
	select {
	case l.queue <- c:
		select {
		case <-l.done:
			// Closed meanwhile: Listener.Close may have drained the
			// queue already.
			l.Close() //nolint:errcheck // drains the queue again
		default:
		}
	default:
		l.s.log.Warn("hvsock connection dropped: backlog full", "guest", c.host.guest.ID(), "service", l.service)
		c.Close() //nolint:errcheck // never accepted
	}
}

// Dial connects to service in guest g, which a guest's Listener listens on:
// the host offers the connection's channel for the guest to accept (its
// interface instance a fresh endpoint id) and waits until the guest opens
// it, ctx ends or Config.OpenTimeout passes.
func (s *Server) Dial(ctx context.Context, g *host.Guest, service protocol.GUID) (*Conn, error) {
	endpoint := ephemeralEndpoint()
	local := Addr{VMID: VMIDWildcard, ServiceID: endpoint}
	remote := Addr{VMID: GuestVMID(g.ID()), ServiceID: service}
	got := make(chan *Conn, 1)
	failed := make(chan error, 1)
	var mu sync.Mutex
	abandoned := false // the caller's ctx ended: a late connection is closed
	ready := func(c *Conn) {
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			c.Close() //nolint:errcheck // nobody wants it
			return
		}
		got <- c
	}
	if err := s.offer(g, service, endpoint, true, local, remote, ready, failed); err != nil {
		return nil, opError("dial", local, remote, err)
	}
	select {
	case c := <-got:
		return c, nil
	case err := <-failed:
		return nil, opError("dial", local, remote, err)
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		mu.Unlock()
		select {
		case c := <-got:
			c.Close() //nolint:errcheck // nobody wants it
		default:
		}
		return nil, opError("dial", local, remote, ctx.Err())
	}
}

// admit counts a connection of g against MaxConnsPerGuest (only if
// limited: a connection carried across a servicing comes back whatever
// the count) and adds it to the server's wait group; release uncounts
// it, and the caller owes the wait group its Done.
func (s *Server) admit(g *host.Guest, limited bool) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, ErrServerClosed
	case limited && s.perGuest[g] >= s.cfg.MaxConnsPerGuest:
		return nil, fmt.Errorf("%w: %d connections of guest %d", ErrLimit, s.cfg.MaxConnsPerGuest, g.ID())
	}
	s.perGuest[g]++
	s.wg.Add(1)
	return func() {
		s.mu.Lock()
		if s.perGuest[g]--; s.perGuest[g] <= 0 {
			delete(s.perGuest, g)
		}
		s.mu.Unlock()
	}, nil
}

// offer makes and offers one connection's channel to g and waits, on a
// goroutine of the server's, for the guest to open it: then ready gets
// the connection; if it does not within OpenTimeout, the offer is
// rescinded and failed (if any) gets why.
func (s *Server) offer(g *host.Guest, service, endpoint protocol.GUID, forGuestAccept bool, local, remote Addr, ready func(*Conn), failed chan<- error) error {
	release, err := s.admit(g, true)
	if err != nil {
		if errors.Is(err, ErrLimit) {
			s.log.Debug("hvsock connection refused: limit", "guest", g.ID(), "service", service, "limit", s.cfg.MaxConnsPerGuest)
		}
		return err
	}
	ev := newEvents()
	ch, st, err := s.startChannel(g, service, endpoint, forGuestAccept, nil, ev)
	if err != nil {
		release()
		s.wg.Done()
		return err
	}
	s.await(&pending{g: g, ch: ch, st: st, ev: ev, service: service, endpoint: endpoint, forGuestAccept: forGuestAccept,
		local: local, remote: remote, ready: ready, failed: failed, release: release})
	return nil
}

// startChannel is enableChannel, and starts the channel.
func (s *Server) startChannel(g *host.Guest, service, endpoint protocol.GUID, forGuestAccept bool, state []byte, ev *events) (*channel.Channel, stream, error) {
	ch, st, err := s.enableChannel(g, service, endpoint, forGuestAccept, state, ev)
	if err != nil {
		return nil, nil, err
	}
	if err := ch.Start(); err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, nil, err
	}
	return ch, st, nil
}

// enableChannel makes a connection's server channel (serverChannel),
// restored from state if there is one, and enables it: it is offered, or
// offered on. On failure nothing of it is left.
func (s *Server) enableChannel(g *host.Guest, service, endpoint protocol.GUID, forGuestAccept bool, state []byte, ev *events) (*channel.Channel, stream, error) {
	ch, st, err := serverChannel(g, service, endpoint, forGuestAccept, s.cfg.MaxBuffered, ev)
	if err != nil {
		return nil, nil, err
	}
	if state != nil {
		err = ch.RestoreChunks([][]byte{state})
	}
	if err == nil {
		err = ch.Enable()
	}
	if err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, nil, err
	}
	return ch, st, nil
}

// pending is a connection's channel offered to a guest that has yet to
// open it.
type pending struct {
	g                 *host.Guest
	ch                *channel.Channel
	st                stream
	ev                *events
	service, endpoint protocol.GUID
	forGuestAccept    bool
	local, remote     Addr
	ready             func(*Conn)
	failed            chan<- error
	release           func() // uncounts it (admit)
}

// await waits, on a goroutine of the server's, for the guest to open p's
// channel: then p.ready gets the connection; if it does not within
// OpenTimeout, the offer is rescinded and p.failed (if any) gets why.
// The caller owes the server's wait group one Done, which await pays.
func (s *Server) await(p *pending) {
	g, ch, st, ev := p.g, p.ch, p.st, p.ev
	down := func() {
		ch.Cleanup() //nolint:errcheck // rescinds; a guest that never releases is disconnected by the host
		p.release()
	}
	s.mu.Lock()
	s.offering[ch] = p
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.offering, ch)
			s.deliveries++
			s.delivered.Broadcast()
			s.mu.Unlock()
		}()
		t := time.NewTimer(s.cfg.OpenTimeout)
		defer t.Stop()
		var why error
		select {
		case <-ev.open:
		case <-ev.closed:
			why = ErrReset
		case <-t.C:
			why = ErrNotOpened
			s.log.Info("hvsock channel not opened: rescinded", "guest", g.ID(), "service", p.service, "timeout", s.cfg.OpenTimeout)
		case <-s.done:
			why = ErrServerClosed
		}
		if why != nil {
			down()
			if p.failed != nil {
				p.failed <- why
			}
			return
		}
		var c *Conn
		c = newConn(st, p.local, p.remote, func() {
			s.linger(ch, ev.closed)
			down()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}, false, s.spawn)
		c.host = &hostEnd{ch: ch, pipe: st.(pipeStream).Conn, guest: g, service: p.service, endpoint: p.endpoint, forGuestAccept: p.forGuestAccept}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close() //nolint:errcheck // the server is going
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		// A guest that closes the channel or goes away resets the
		// connection: the host rescinds at once.
		s.spawn(func() {
			select {
			case <-ev.closed:
				c.goDown()
			case <-c.down:
			}
		})
		if h := testHookDeliver; h != nil {
			h()
		}
		p.ready(c)
	}()
}

// testHookDeliver, if set, runs on an offer's goroutine before it hands
// the opened connection on: a test holds a connection on its way to the
// listener's queue with it.
var testHookDeliver func()

// spawn runs fn on a goroutine Close waits for.
func (s *Server) spawn(fn func()) {
	s.wg.Go(fn)
}

// Close stops the listeners, closes every connection (rescinding its
// channel) and waits until they are down.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closed = true
	close(s.done)
	s.cancel()
	var ls []*Listener
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	var cs []*Conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close() //nolint:errcheck // closing
	}
	for _, c := range cs {
		c.Close() //nolint:errcheck // closing
	}
	s.wg.Wait()
	return nil
}

// waitDelivered waits until no connection to service whose channel the
// guest has opened is still on its way to its listener's queue (the
// offer's goroutine, between the open and ready), or d has passed; false
// if it ran out.
func (s *Server) waitDelivered(service protocol.GUID, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return waitUntil(&s.delivered, d, func() bool {
		for {
			var chs []*channel.Channel
			for ch, p := range s.offering {
				if p.service == service {
					chs = append(chs, ch)
				}
			}
			gen := s.deliveries
			// A channel's state is read without s.mu: its own lock is
			// not to be taken under the server's.
			s.mu.Unlock()
			opened := slices.ContainsFunc(chs, func(ch *channel.Channel) bool { return ch.State() == channel.StateActive })
			s.mu.Lock()
			if !opened {
				return true
			}
			if gen == s.deliveries {
				return false // a delivery since would have been seen
			}
		}
	})
}

// linger waits, at most LingerTimeout, for the guest to read what is
// still in ch's outgoing ring, before a closing connection rescinds it;
// waitLingers waits for the lingers in progress. closed is the
// connection's ev.closed.
//
// A channel the guest closed (or a guest gone) ends the wait at once:
// WaitSendSpace would wait for the guest to open the server's channel
// again, which it never does, until LingerTimeout.
func (s *Server) linger(ch *channel.Channel, closed <-chan struct{}) {
	s.mu.Lock()
	s.lingering++
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.LingerTimeout)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	drain(ctx, ch)
	cancel()
	<-watched
	s.mu.Lock()
	s.lingering--
	s.lingered.Broadcast()
	s.mu.Unlock()
}

// waitLingers waits until no connection lingers, or d has passed (false):
// a servicing does not carry a connection that ended, and its successor
// rescinds the channel, which must not overtake the guest's read of the
// connection's last bytes and end.
func (s *Server) waitLingers(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return waitUntil(&s.lingered, d, func() bool { return s.lingering == 0 })
}
