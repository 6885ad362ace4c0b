package hosting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hvsock"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

// openRelays starts an hvsock server and the relays of Config.Relays,
// if any: they listen from New on, and guests reach them once the daemon
// serves.
func (d *Daemon) openRelays() error {
	if len(d.cfg.Relays) == 0 && len(d.cfg.Connects) == 0 {
		return nil
	}
	routes, err := hvsock.ParseRoutes(d.cfg.Relays)
	if err != nil {
		return fmt.Errorf("%w: relay: %w", ErrDevice, err)
	}
	seen := make(map[protocol.GUID]bool, len(routes))
	for _, r := range routes {
		if seen[r.Service] {
			return fmt.Errorf("%w: relay: service %v given twice", ErrDevice, r.Service)
		}
		seen[r.Service] = true
	}
	connects := make([]hvsock.Route, 0, len(d.cfg.Connects))
	paths := make(map[string]bool, len(d.cfg.Connects))
	for _, c := range d.cfg.Connects {
		r, err := hvsock.ParseConnect(c)
		if err != nil {
			return fmt.Errorf("%w: connect: %w", ErrDevice, err)
		}
		p := filepath.Clean(r.Address)
		if paths[p] || p == filepath.Clean(d.cfg.Socket) {
			return fmt.Errorf("%w: connect: path %s given twice, or the bus socket's", ErrDevice, r.Address)
		}
		paths[p] = true
		connects = append(connects, r)
	}
	d.hv = hvsock.NewServer(hvsock.Config{Logger: d.log})
	for _, r := range routes {
		rl, err := d.hv.Relay(r)
		if err != nil {
			d.closeRelays()
			return fmt.Errorf("hosting: relay %v: %w", r, err)
		}
		d.relays = append(d.relays, rl)
	}
	for _, r := range connects {
		rl, err := d.hv.Connect(r, d.firstGuest)
		if err != nil {
			d.closeRelays()
			return fmt.Errorf("hosting: connect %v: %w", r, err)
		}
		d.relays = append(d.relays, rl)
	}
	return nil
}

// firstGuest is the guest a host-initiated connection goes to: the one
// connected longest (the lowest id) of those served, or nil.
func (d *Daemon) firstGuest() *host.Guest {
	if gs := d.devs.snapshot(); len(gs) > 0 {
		return gs[0].g
	}
	return nil
}

// listenConnects binds the connect relays' socket paths: a fresh start.
func (d *Daemon) listenConnects() error {
	for _, rl := range d.relays {
		if rl.IsConnect() {
			if err := rl.Listen(); err != nil {
				return err
			}
		}
	}
	return nil
}

// connectName is the handover's name of connect relay i's listener.
func connectName(i int) string { return fmt.Sprintf("hvc%d.listen", i) }

// handConnects adds a duplicate of each connect relay's listener to
// files; the returned files are the caller's to close once the handover
// is done.
func (d *Daemon) handConnects(files map[string]int) ([]*os.File, error) {
	var keep []*os.File
	for i, rl := range d.relays {
		if !rl.IsConnect() {
			continue
		}
		f, err := rl.ListenerFile()
		if err == nil {
			var fd int
			if fd, err = fileFD(f); err == nil {
				files[connectName(i)] = fd
				keep = append(keep, f)
				continue
			}
			f.Close()
		}
		for _, f := range keep {
			f.Close()
		}
		return nil, fmt.Errorf("connect listener: %w", err)
	}
	return keep, nil
}

// adoptConnects has each connect relay accept on the listener handed
// over, or listen anew where none was (a predecessor without it), and
// each listen relay that a servicing recovered in this process held
// accept again.
func (d *Daemon) adoptConnects(files map[string]int) {
	for i, rl := range d.relays {
		if !rl.IsConnect() {
			rl.ResumeAccept()
			continue
		}
		var err error
		if fd, ok := files[connectName(i)]; ok {
			delete(files, connectName(i))
			err = rl.ServeFile(os.NewFile(uintptr(fd), connectName(i)))
		} else {
			err = rl.Listen()
		}
		if err != nil {
			d.log.Error("hvsock connect relay not listening", "route", rl.Key(), "err", err)
		}
	}
}

// resumeAccepts lets the relays accept again: the servicing
// failed before its handover.
func (d *Daemon) resumeAccepts() {
	for _, rl := range d.relays {
		rl.ResumeAccept()
	}
}

// closeRelays ends every hvsock connection and relay and waits for them.
// The server goes first: its Close ends the connections' lingers at once,
// so that the relays' resets do not wait for a guest.
func (d *Daemon) closeRelays() {
	if d.hv == nil {
		return
	}
	d.hv.Close() //nolint:errcheck // once: hv is dropped below
	for _, rl := range d.relays {
		rl.Close() //nolint:errcheck // once: relays are dropped below
	}
	d.hv, d.relays = nil, nil
}

// kindHostHVSockConn is one relayed hvsock connection a servicing
// carries (docs/SAVED_STATE.md): u32 guest index, then the connection's
// state (hvsock.ConnState), its channel's state inside.
const kindHostHVSockConn savedstate.Kind = 0x0204

// kindHostHVSockOffer is one hvsock connection a relay's service offered
// and the guest had not opened when the bus parked (docs/SAVED_STATE.md):
// as kindHostHVSockConn, without bytes or a local socket. Not critical:
// a successor that does not read it rescinds the offer, as one before it
// did.
const kindHostHVSockOffer savedstate.Kind = 0x0205

func init() {
	savedstate.RegisterKind(kindHostHVSockConn, savedstate.KindInfo{Name: "host-hvsock-conn", Describe: func(b []byte) (any, error) {
		c, err := decodeConnRecord(b)
		if err != nil {
			return nil, err
		}
		return connJSON{Guest: c.Guest, Route: c.State.Route, Service: c.State.Service.String(), Endpoint: c.State.Endpoint.String(),
			ForGuestAccept: c.State.ForGuestAccept, ToLocal: len(c.State.ToLocal), ToGuest: len(c.State.ToGuest),
			GuestEnded: c.State.GuestEnded, LocalShut: c.State.LocalShut, LocalEnded: c.State.LocalEnded, GuestShut: c.State.GuestShut,
			Channel: len(c.State.Channel)}, nil
	}})
}

func init() {
	savedstate.RegisterKind(kindHostHVSockOffer, savedstate.KindInfo{Name: "host-hvsock-offer", Describe: func(b []byte) (any, error) {
		c, err := decodeConnRecord(b)
		if err != nil {
			return nil, err
		}
		return connJSON{Guest: c.Guest, Route: c.State.Route, Service: c.State.Service.String(), Endpoint: c.State.Endpoint.String(), Channel: len(c.State.Channel)}, nil
	}})
}

// connState is one carried connection of a host state: its guest's index
// and its state. Its local socket travels as the descriptor connName(i).
type connState struct {
	Guest uint32
	State *hvsock.ConnState
}

// connJSON is how inspect shows a connection record.
type connJSON struct {
	Guest          uint32 `json:"guest"`
	Route          string `json:"route"`
	Service        string `json:"service"`
	Endpoint       string `json:"endpoint"`
	ForGuestAccept bool   `json:"for_guest_accept,omitempty"`
	ToLocal        int    `json:"to_local_bytes"`
	ToGuest        int    `json:"to_guest_bytes"`
	GuestEnded     bool   `json:"guest_ended,omitempty"`
	LocalShut      bool   `json:"local_shut,omitempty"`
	LocalEnded     bool   `json:"local_ended,omitempty"`
	GuestShut      bool   `json:"guest_shut,omitempty"`
	Channel        int    `json:"channel_bytes"`
}

func (c *connState) record() (savedstate.Record, error) {
	return c.recordOf(kindHostHVSockConn, savedstate.FlagCritical)
}

// recordOf is c as a record of kind k (a connection, or an offer).
func (c *connState) recordOf(k savedstate.Kind, flags uint32) (savedstate.Record, error) {
	var e savedstate.Encoder
	e.U32(c.Guest)
	c.State.Encode(&e)
	if len(e.Body()) > savedstate.MaxBody {
		return savedstate.Record{}, fmt.Errorf("guest %d: an hvsock connection's state of %d bytes", c.Guest, len(e.Body()))
	}
	return savedstate.Record{Kind: k, Flags: flags, Body: e.Body()}, nil
}

func decodeConnRecord(b []byte) (*connState, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("host-hvsock-conn of %d bytes", len(b))
	}
	st, err := hvsock.DecodeConnState(b[4:])
	if err != nil {
		return nil, err
	}
	return &connState{Guest: binary.LittleEndian.Uint32(b), State: st}, nil
}

// connName is the handover's name of carried connection i's local socket.
func connName(i int) string { return fmt.Sprintf("hv%d.sock", i) }

// carriesConns reports whether any relay has a connection a servicing
// would carry (a host-hvsock-conn record).
func (d *Daemon) carriesConns() bool {
	for _, rl := range d.relays {
		if rl.Conns() > 0 {
			return true
		}
	}
	return false
}

// pauseRelays pauses every relayed connection for a servicing.
func (d *Daemon) pauseRelays() []*hvsock.Carried {
	var out []*hvsock.Carried
	for _, rl := range d.relays {
		out = append(out, rl.Pause()...)
	}
	return out
}

// pauseRelaysLate pauses the relayed connections the guests opened
// after pauseRelays, until the bus was parked (hvsock.Relay.PauseLate).
// It fails if one holds more than a state carries (which a connection
// this new cannot: see hvsock.MaxCarriedToLocal); the others are still
// returned, for the recovery in this process.
func (d *Daemon) pauseRelaysLate() ([]*hvsock.Carried, error) {
	var out []*hvsock.Carried
	var errs []error
	for _, rl := range d.relays {
		for _, c := range rl.PauseLate() {
			if err := c.Check(); err != nil {
				errs = append(errs, err)
			}
			out = append(out, c)
		}
	}
	return out, errors.Join(errs...)
}

// pauseOffers pauses the offered hvsock connections the guests had not
// opened when the bus parked (hvsock.Relay.PauseOffers).
func (d *Daemon) pauseOffers() []*hvsock.PendingConn {
	var out []*hvsock.PendingConn
	for _, rl := range d.relays {
		out = append(out, rl.PauseOffers()...)
	}
	return out
}

// saveOffers adds each paused offer whose guest was saved to st. One
// whose state cannot be had is left out: the successor rescinds it, and
// the guest's connect fails with a reset.
func (d *Daemon) saveOffers(offers []*hvsock.PendingConn, index map[uint64]int, st *hostState) {
	for _, pc := range offers {
		i, ok := index[pc.Guest().ID()]
		if !ok {
			continue
		}
		cs, err := pc.Save()
		if err != nil {
			d.log.Info("hvsock offer not carried", "guest", pc.Guest().ID(), "err", err)
			continue
		}
		st.Offers = append(st.Offers, connState{Guest: uint32(i), State: cs})
	}
}

// restoreOffers offers on the connections a predecessor had offered and
// the guests had not opened (saveOffers), each by the relay of its key.
// One that cannot be taken back stays waiting, and abandonWaiting
// rescinds it.
func (d *Daemon) restoreOffers(guests []*host.Guest, offers []connState) (n int) {
	target := d.carriedTarget(guests)
	for _, o := range offers {
		rl, g := target(o)
		if rl == nil || g == nil {
			d.log.Warn("hvsock offer not carried: its relay or guest is gone", "route", o.State.Route, "guest", o.Guest)
			continue
		}
		if err := rl.RestorePending(g, o.State); err != nil {
			d.log.Warn("hvsock offer not carried", "route", o.State.Route, "guest", g.ID(), "err", err)
			continue
		}
		n++
	}
	return n
}

// resumeCarried lets paused connections flow again: the servicing
// failed before anything was saved.
func resumeCarried(carried []*hvsock.Carried) {
	for _, c := range carried {
		c.Resume()
	}
}

// saveCarried adds each paused connection whose guest was saved (by id,
// its index in the state) to st, and its local socket to files; the
// returned files are the caller's to close once the handover is done.
// A connection of a guest not saved is reset.
func saveCarried(carried []*hvsock.Carried, index map[uint64]int, st *hostState, files map[string]int) ([]*os.File, error) {
	var keep []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range keep {
			f.Close()
		}
		return nil, err
	}
	for _, c := range carried {
		i, ok := index[c.Guest().ID()]
		if !ok {
			c.Drop()
			continue
		}
		cs, f, err := c.Save()
		if err != nil {
			return fail(fmt.Errorf("guest %d: hvsock connection: %w", c.Guest().ID(), err))
		}
		fd, err := fileFD(f)
		if err != nil {
			f.Close()
			return fail(err)
		}
		files[connName(len(st.Conns))] = fd
		st.Conns = append(st.Conns, connState{Guest: uint32(i), State: cs})
		keep = append(keep, f)
	}
	return keep, nil
}

// ownConns puts duplicates of the carried connections' sockets and of the
// connect relays' listeners into owned, for a restore in this process.
func ownConns(files map[string]int, owned map[string]int) error {
	for name, fd := range files {
		if !strings.HasPrefix(name, "hv") {
			continue
		}
		fd, err := syscall.Dup(fd)
		if err != nil {
			return err
		}
		syscall.CloseOnExec(fd)
		owned[name] = fd
	}
	return nil
}

// restoreConns takes back the carried connections: each on its guest's
// restored channel, by the relay of its key. One that cannot be taken
// back stays waiting, and abandonWaiting rescinds it: the guest reads a
// reset, and its local socket is closed.
// It returns how many it took back, and the bytes they carried on
// their way to the local sockets and to the guests.
func (d *Daemon) restoreConns(guests []*host.Guest, conns []connState, files map[string]int) (n, toLocal, toGuest int) {
	target := d.carriedTarget(guests)
	for i, c := range conns {
		fd, ok := files[connName(i)]
		if !ok {
			d.log.Warn("hvsock connection not carried: no local socket", "conn", i)
			continue
		}
		delete(files, connName(i))
		f := os.NewFile(uintptr(fd), connName(i))
		rl, g := target(c)
		if rl == nil || g == nil {
			f.Close()
			d.log.Warn("hvsock connection not carried: its relay or guest is gone", "route", c.State.Route, "guest", c.Guest)
			continue
		}
		if err := rl.Restore(g, c.State, f); err != nil {
			d.log.Warn("hvsock connection not carried", "route", c.State.Route, "guest", g.ID(), "err", err)
			continue
		}
		n++
		toLocal += len(c.State.ToLocal)
		toGuest += len(c.State.ToGuest)
	}
	return n, toLocal, toGuest
}

// carriedTarget returns the lookup of a carried connection's or offer's
// relay (by its route's key) and guest (by index) among guests; nil for
// one that is gone.
func (d *Daemon) carriedTarget(guests []*host.Guest) func(connState) (*hvsock.Relay, *host.Guest) {
	keys := make(map[string]*hvsock.Relay, len(d.relays))
	for _, rl := range d.relays {
		keys[rl.Key()] = rl
	}
	return func(c connState) (*hvsock.Relay, *host.Guest) {
		var g *host.Guest
		if int(c.Guest) < len(guests) {
			g = guests[c.Guest]
		}
		return keys[c.State.Route], g
	}
}

// abandonWaiting rescinds every restored channel no device or relay took
// back. Left waiting, a guest's channel would stall with nothing to tell
// it; rescinded, an hvsock connection reads a reset (ECONNRESET).
func (d *Daemon) abandonWaiting(guests []*host.Guest) {
	for _, g := range guests {
		if g == nil {
			continue
		}
		for _, spec := range g.Waiting() {
			d.log.Warn("channel not carried across the servicing: rescinded", "guest", g.ID(), "type", spec.InterfaceType, "instance", spec.InterfaceInstance)
			g.Abandon(spec) //nolint:errcheck // listed as waiting just now, under the daemon's one goroutine
		}
	}
}
