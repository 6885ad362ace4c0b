package hvsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/sockpath"
)

// ParseConnect reads unix:PATH=SERVICE (vmbus host --hvsock-connect): a
// local Unix socket whose connections go to SERVICE (ParseService) on a
// guest. The route's Network is "unix", its Address PATH.
func ParseConnect(s string) (Route, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 || !strings.HasPrefix(s, "unix:") || i <= len("unix:") {
		return Route{}, fmt.Errorf("%w: %q is not unix:PATH=SERVICE", ErrSyntax, s)
	}
	id, err := ParseService(s[i+1:])
	if err != nil {
		return Route{}, err
	}
	return Route{Service: id, Network: "unix", Address: s[len("unix:"):i]}, nil
}

// connectString is a connect route as ParseConnect reads it.
func connectString(r Route) string { return "unix:" + r.Address + "=" + r.Service.String() }

// Connect makes a relay the other way round: each connection to the local
// Unix socket r.Address becomes a host-initiated connection (Dial) to
// r.Service on the guest pick returns, relayed both ways as Relay's are.
// With no guest (pick returns nil), or a guest that does not accept in
// time (Config.OpenTimeout: nothing listens on the service), the local
// connection is closed. It does not listen yet: Listen binds the path,
// or ServeFile takes a listener handed over by a servicing.
func (s *Server) Connect(r Route, pick func() *host.Guest) (*Relay, error) {
	if r.Network != "unix" || r.Address == "" {
		return nil, errors.New("hvsock: a connect route is a unix socket path")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrServerClosed
	}
	rl := newRelay(s, r)
	rl.pick = pick
	rl.resume = make(chan struct{}, 1)
	return rl, nil
}

// connector is what a connect relay has beside a Relay's fields.
type connector struct {
	pick   func() *host.Guest
	ul     *net.UnixListener
	resume chan struct{} // the accept loop, held by a pause, goes on
	handed bool          // the listener went to a successor: Close leaves its path
}

// Listen binds the connect relay's socket path and starts accepting; a
// relay that listens already accepts again (ResumeAccept).
func (r *Relay) Listen() error {
	if r.ul != nil {
		r.ResumeAccept()
		return nil
	}
	// A socket a host that died left is replaced; a live one, or a file
	// that is not a socket, is refused (sockpath.ErrInUse, ErrNotSocket).
	if err := sockpath.Claim(r.route.Address, "unix"); err != nil {
		return fmt.Errorf("hvsock: connect: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: r.route.Address, Net: "unix"})
	if err != nil {
		return fmt.Errorf("hvsock: connect: %w", err)
	}
	r.serveLocal(l)
	return nil
}

// ServeFile accepts on f, the connect relay's listener handed over by a
// predecessor, and takes f whatever the outcome. A relay already
// listening (a servicing restored in its own process) goes on with its
// own.
func (r *Relay) ServeFile(f *os.File) error {
	defer f.Close()
	if r.ul != nil {
		r.ResumeAccept()
		return nil
	}
	l, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("hvsock: connect: the inherited listener: %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return fmt.Errorf("hvsock: connect: an inherited listener of type %T", l)
	}
	r.serveLocal(ul)
	return nil
}

func (r *Relay) serveLocal(l *net.UnixListener) {
	r.ul = l
	r.wg.Go(r.acceptLocal)
}

// IsConnect reports whether the relay is a connect relay (Server.Connect).
func (r *Relay) IsConnect() bool { return r.pick != nil }

// acceptLocal takes the local connections until the listener closes; a
// pause (HoldAccept) holds it until ResumeAccept.
func (r *Relay) acceptLocal() {
	for {
		lc, err := r.ul.AcceptUnix()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-r.resume:
				continue
			case <-r.ctx.Done():
				return
			}
		}
		if err != nil {
			return
		}
		if !r.trackDial(lc, true) {
			lc.Close()
			return
		}
		r.wg.Go(func() { r.dialGuest(lc) })
	}
}

// dialGuest connects lc to the service on the chosen guest and relays
// the two; without a guest, or one that does not accept, lc is closed.
func (r *Relay) dialGuest(lc *net.UnixConn) {
	g := r.pick()
	if g == nil {
		r.trackDial(lc, false)
		r.log.Warn("hvsock connect: no guest; the local connection is closed", "route", connectString(r.route))
		lc.Close()
		return
	}
	gc, err := r.s.Dial(r.ctx, g, r.route.Service)
	if err != nil {
		r.trackDial(lc, false)
		r.log.Warn("hvsock connect: the guest did not accept; the local connection is closed", "route", connectString(r.route), "guest", g.ID(), "err", err)
		lc.Close()
		return
	}
	rc := newRelayed(r, gc, lc)
	if !r.addDialed(lc, rc) {
		rc.close()
		return
	}
	rc.run()
}

// HoldAccept stops a connect relay's accepting for a servicing: local
// connections wait in the socket's backlog (for the successor, which
// takes the listener over).
func (r *Relay) HoldAccept() {
	if r.ul != nil {
		r.ul.SetDeadline(time.Unix(1, 0)) //nolint:errcheck // a closed listener accepts nothing anyway
	}
}

// ResumeAccept undoes a pause's hold on accepting (HoldAccept, and a
// listen relay's held accept loop): the servicing failed, or was
// recovered in this process.
func (r *Relay) ResumeAccept() {
	r.mu.Lock()
	held := r.held
	r.held = false
	// Connections dialed while held started stopped (addDialed); those
	// no pause took (their dial outlasted PauseDialWait) go on now.
	var stopped []*relayed
	for rc := range r.conns {
		if !rc.parked && rc.stopping.Load() {
			stopped = append(stopped, rc)
		}
	}
	r.mu.Unlock()
	if held {
		select {
		case r.release <- struct{}{}:
		default:
		}
	}
	for _, rc := range stopped {
		if rc.stop() {
			rc.resume()
		}
	}
	if r.ul == nil {
		return
	}
	r.ul.SetDeadline(time.Time{}) //nolint:errcheck // see HoldAccept
	select {
	case r.resume <- struct{}{}:
	default:
	}
}

// ListenerFile is a duplicate of the connect relay's listener, for a
// successor (close-on-exec; the caller hands it over, or closes it).
// From then on Close leaves the socket's path to the successor.
func (r *Relay) ListenerFile() (*os.File, error) {
	if r.ul == nil {
		return nil, errors.New("hvsock: connect: not listening")
	}
	r.ul.SetUnlinkOnClose(false)
	r.handed = true
	return r.ul.File()
}

// closeLocal closes the connect relay's listener, and removes its path
// unless a successor has it.
func (r *Relay) closeLocal() {
	if r.ul == nil {
		return
	}
	r.ul.Close()
	if !r.handed {
		os.Remove(r.route.Address) //nolint:errcheck // a listener from a predecessor does not unlink it itself
	}
}
