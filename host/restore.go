package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/transport"
)

// ErrBadState matches every bus state Restore refuses: malformed, from
// another scope, inconsistent, or claiming what this host does not
// support. The container's own errors match savedstate.ErrInvalid too.
var ErrBadState = errors.New("host: bad bus state")

// maxStateBytes bounds one guest's bus state.
const maxStateBytes = 64 << 20

func badState(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadState, fmt.Sprintf(format, args...))
}

// Restore makes a host that continues the guest connections a predecessor
// saved with SaveGuests: the same version, channel ids, open channels (on
// the same rings and events), GPADLs, and what was under way. It
// duplicates the descriptors of saved (the caller keeps them, owned or
// borrowed) and checks
// every state completely before it builds anything; a state that claims a
// protocol version or features this host does not support is refused.
//
// Config.Devices must be the predecessor's (the same identities, hence
// the same channel ids); a device whose channel was open is opened again
// (Device.Open) on the existing rings. Channels that package channel's
// server channels offered (Guest.Offer) wait, in the state they were in,
// for their server channel to re-attach (Guest.Reattach) after restoring
// its own state; meanwhile the guest's messages about them are answered as
// for a device that refuses to open. Nothing is sent to the guest: the
// control planes start with Resume, once the server channels re-attached.
// Config.OnGuest is not called for restored guests: they made contact
// before.
//
// Each guest is restored on its own: one whose state cannot be restored
// (malformed or inconsistent, memory or events not what it says, a device
// that refuses to reopen) is no part of the restored host, and
// Config.Logger says why, in one line; every other guest is restored. A
// guest's ring indices are not checked here: they are in guest memory,
// the guest's to write at any time, and the channel that reads a ring
// checks them, as it does while it runs (a corrupt ring stops that
// channel, not the guest).
//
// It returns the host and each guest, in the order of saved: nil for a
// guest that was not restored, whose descriptors (duplicates) are closed,
// so that only the caller's copy keeps its connection open
// (Host.RestoreErrors says why). The error is for the restore as a whole:
// more guests than Limits.MaxGuests.
func Restore(cfg Config, saved []SavedGuest) (*Host, []*Guest, error) {
	return restore(cfg, saved, false)
}

// RestoreOwned is Restore taking the owned descriptors of saved over
// instead of duplicating them: whatever the outcome, each is the restored
// host's or closed, and saved's FDs are none afterwards (Events nil), so
// that the caller's SavedGuest.Close closes nothing. A borrowed FD is
// duplicated, as Restore does, and stays its lender's. An owned
// descriptor must have no other use and should be close-on-exec. A
// successor's inherited descriptors are that: each becomes an Event or
// Memory as it is (transport.AdoptEventFD, guestmem.FromFD), registered
// with the runtime poller once, on the goroutine restoring its guest (a
// socket is still duplicated, by net.FileConn). The checks are Restore's,
// and a guest that is not restored is disconnected: its descriptors are
// closed.
func RestoreOwned(cfg Config, saved []SavedGuest) (*Host, []*Guest, error) {
	h, guests, err := restore(cfg, saved, true)
	for i := range saved {
		// What restoreGuest did not hand to an owner: refused before it
		// got there, or a guest past the limit.
		saved[i].Close()
		saved[i].Events = nil
	}
	return h, guests, err
}

// dup is a copy of s with owned duplicates of its descriptors. On error
// it has closed those it made.
func (s *SavedGuest) dup() (SavedGuest, error) {
	c := *s
	c.Conn, c.Memory, c.Events = FD{}, FD{}, make([]SavedEvent, len(s.Events))
	var err error
	c.Conn, err = s.Conn.Dup()
	if err == nil {
		c.Memory, err = s.Memory.Dup()
	}
	for i := range s.Events {
		if err != nil {
			break
		}
		c.Events[i] = SavedEvent{ChannelID: s.Events[i].ChannelID, Dir: s.Events[i].Dir}
		c.Events[i].FD, err = s.Events[i].FD.Dup()
	}
	if err != nil {
		c.Close()
		return SavedGuest{}, err
	}
	return c, nil
}

func restore(cfg Config, saved []SavedGuest, own bool) (*Host, []*Guest, error) {
	h := New(cfg)
	if len(saved) > h.limits.MaxGuests {
		return nil, nil, fmt.Errorf("host: %d saved guests, the limit is %d", len(saved), h.limits.MaxGuests)
	}
	// The guests are independent: each is rebuilt on its own goroutine
	// (a few at a time).
	built := make([]*guestConn, len(saved))
	errs := make([]error, len(saved))
	ids := h.restoredIDs(saved)
	var wg sync.WaitGroup
	sem := make(chan struct{}, restoreParallel)
	for i := range saved {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			built[i], errs[i] = h.restoreGuest(&saved[i], ids[i], own)
			<-sem
		}()
	}
	wg.Wait()
	// A guest that failed took nothing of the others with it: restoreGuest
	// freed what it had built of it.
	guests := make([]*Guest, len(saved))
	h.mu.Lock()
	for i, gc := range built {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("host: restore guest %d: %w", i, errs[i])
			h.log.Warn("guest not restored; disconnected", "index", i, "guest", ids[i], "err", errs[i])
			h.refused = errs
			continue
		}
		h.guests[gc] = struct{}{}
		h.restored = append(h.restored, gc)
		guests[i] = gc.guest
	}
	h.mu.Unlock()
	return h, guests, nil
}

// restoredIDs gives each saved guest its Guest.ID: the one it had in the
// saving host (SavedGuest.ID), so that a number an operator or a program
// holds names the same guest after a servicing; a fresh one, above every
// other, to a guest saved without one (a state from a release that did
// not carry them) or with one another guest took first. Guests that
// connect later are numbered above them all.
func (h *Host) restoredIDs(saved []SavedGuest) []uint64 {
	ids := make([]uint64, len(saved))
	taken := make(map[uint64]bool, len(saved))
	for i := range saved {
		// Bounded so that the numbers after it cannot wrap to 0.
		if id := saved[i].ID; id != 0 && id <= maxGuestID && !taken[id] {
			ids[i], taken[id] = id, true
			h.nextGuest = max(h.nextGuest, id)
		}
	}
	for i := range ids {
		if ids[i] == 0 {
			h.nextGuest++
			ids[i] = h.nextGuest
		}
	}
	return ids
}

// maxGuestID bounds a restored Guest.ID: a state's are not trusted.
const maxGuestID = 1 << 48

// RestoreErrors says, for a host that Restore or RestoreOwned made, why
// each guest it did not restore was not: one error per saved guest, in
// their order, nil for a guest restored. It is nil if every guest was
// restored, and for a host New made.
func (h *Host) RestoreErrors() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.refused)
}

// restoreParallel bounds the guests Restore rebuilds at a time.
const restoreParallel = 8

// Resume starts the control planes of the guests Restore rebuilt: their
// messages, waiting in the sockets since the save, are handled from now
// on. Calling it again does nothing.
func (h *Host) Resume() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return
	}
	for _, gc := range h.restored {
		gc.mu.Lock()
		gc.unresumed = false
		for i := range gc.chans {
			if cs := &gc.chans[i]; cs.rescinded && !cs.rescindedAt.IsZero() {
				gc.armReleaseTimerLocked(h.limits.ReleaseTimeout)
				break
			}
		}
		gc.mu.Unlock()
		h.conns.Add(1)
		go func() {
			defer h.conns.Done()
			defer h.unregister(gc)
			gc.run() //nolint:errcheck // logged by run
		}()
	}
	h.restored = nil
}

// discard frees a guest that Restore built and will not serve.
func (gc *guestConn) discard() {
	gc.mu.Lock()
	gc.detached = true
	gc.mu.Unlock()
	gc.cleanup()
	gc.c.Close()
	close(gc.done)
}

// parsedBus is a bus state, decoded and checked, not yet acted on.
type parsedBus struct {
	conn   *connRecord
	chans  []*chanRecord
	gpadls []*gpadlRecord
}

// parseBus checks a bus state on its own: container, kinds, bounds and
// every reference between its records.
func (h *Host) parseBus(state []byte) (*parsedBus, error) {
	begin, recs, err := savedstate.Parse(state, savedstate.Limits{MaxBytes: maxStateBytes})
	if err != nil {
		return nil, err
	}
	if begin.Scope != savedstate.ScopeBus || !bytes.Equal(begin.Identity, busIdentity) {
		return nil, badState("a %v state with identity %q, not a bus state", begin.Scope, begin.Identity)
	}
	var nChans, nGpadls int
	for _, r := range recs {
		switch r.Kind {
		case KindBusChannel:
			nChans++
		case KindBusGpadl:
			nGpadls++
		}
	}
	p := &parsedBus{chans: make([]*chanRecord, 0, nChans), gpadls: make([]*gpadlRecord, 0, nGpadls)}
	for i, r := range recs {
		switch r.Kind {
		case KindBusConnection:
			if i != 0 {
				return nil, badState("connection record at %d, must be first", i+1)
			}
			if p.conn, err = decodeConn(r.Body); err != nil {
				return nil, err
			}
		case KindBusChannel:
			c, err := decodeChan(r.Body)
			if err != nil {
				return nil, err
			}
			if n := len(p.chans); n > 0 && c.ChannelID <= p.chans[n-1].ChannelID {
				return nil, badState("channel %d after channel %d", c.ChannelID, p.chans[n-1].ChannelID)
			}
			p.chans = append(p.chans, c)
		case KindBusGpadl:
			g, err := decodeGpadl(r.Body)
			if err != nil {
				return nil, err
			}
			if n := len(p.gpadls); n > 0 && g.ID <= p.gpadls[n-1].ID {
				return nil, badState("GPADL %#x after GPADL %#x", g.ID, p.gpadls[n-1].ID)
			}
			p.gpadls = append(p.gpadls, g)
		default:
			if r.Critical() {
				return nil, badState("critical record of unknown kind %#x", uint16(r.Kind))
			}
		}
	}
	if p.conn == nil {
		return nil, badState("no connection record")
	}
	return p, h.checkBus(p)
}

// checkBus checks what the records say against each other and this host.
func (h *Host) checkBus(p *parsedBus) error {
	c := p.conn
	if c.Contacted {
		if !c.Version.Known() {
			return badState("the saved connection speaks protocol version %v, which this host does not support", c.Version)
		}
		if extra := c.Features &^ SupportedFeatures; extra != 0 {
			return badState("the saved connection has features %#x that this host does not support", uint32(extra))
		}
		if c.Version < protocol.VersionCopper && c.Features != 0 {
			return badState("features %#x with version %v", uint32(c.Features), c.Version)
		}
		if c.MessageConn != messageConnFor(c.Version) {
			return badState("message connection id %d, this host uses %d for version %v", c.MessageConn, messageConnFor(c.Version), c.Version)
		}
	} else if c.Version != 0 || c.Features != 0 || c.MessageConn != 0 || c.OffersSent {
		return badState("negotiation state without contact")
	}
	if c.Bad > uint32(h.limits.MaxBadMessages) {
		return badState("%d bad messages, past the limit", c.Bad)
	}
	if c.HasMemory != (c.MemorySize != 0) {
		return badState("memory flag and size %d disagree", c.MemorySize)
	}
	if len(p.chans) < len(h.offers) {
		return badState("%d channels, the host offers %d devices", len(p.chans), len(h.offers))
	}
	byID := make(map[uint32]*chanRecord, len(p.chans))
	type ident struct {
		typ, inst protocol.GUID
		sub       uint16
	}
	live := make(map[ident]bool)
	for i, ch := range p.chans {
		if ch.ChannelID == 0 || ch.ChannelID > protocol.MaxChannelID {
			return badState("channel id %d", ch.ChannelID)
		}
		if ch.ConnectionID != protocol.ChannelConnectionID(ch.ChannelID, protocol.MessageSINT, 0) {
			return badState("channel %d has connection id %#x", ch.ChannelID, ch.ConnectionID)
		}
		if i < len(h.offers) {
			o := &h.offers[i]
			if ch.ChannelID != o.channelID || ch.Dynamic || ch.Type != o.spec.InterfaceType || ch.Instance != o.spec.InterfaceInstance || ch.Subchannel != o.spec.SubchannelIndex {
				return badState("channel %d is not device %d of this host's configuration (%v/%v subchannel %d)", ch.ChannelID, i, o.spec.InterfaceType, o.spec.InterfaceInstance, o.spec.SubchannelIndex)
			}
		} else if !ch.Dynamic {
			return badState("channel %d is a device this host's configuration lacks", ch.ChannelID)
		}
		if ch.State != chanOffered && !c.OffersSent {
			return badState("channel %d is %d before the guest asked for offers", ch.ChannelID, ch.State)
		}
		if ch.State == chanOpen {
			if ch.Open.ChannelID != ch.ChannelID {
				return badState("channel %d opened as channel %d", ch.ChannelID, ch.Open.ChannelID)
			}
			if !c.HasMemory {
				return badState("channel %d open without guest memory", ch.ChannelID)
			}
			if ch.Open.Extended && c.Features&(protocol.FeatureGuestSpecifiedSignalParams|protocol.FeatureInterruptRedirection) == 0 {
				return badState("channel %d opened with the long form without the feature", ch.ChannelID)
			}
		}
		if ch.State == chanOffered || ch.State == chanOpen {
			k := ident{ch.Type, ch.Instance, ch.Subchannel}
			if live[k] {
				return badState("two channels offer %v/%v subchannel %d", ch.Type, ch.Instance, ch.Subchannel)
			}
			live[k] = true
		}
		byID[ch.ChannelID] = ch
	}
	if len(p.gpadls) > h.limits.MaxGpadls {
		return badState("%d GPADLs, the limit is %d", len(p.gpadls), h.limits.MaxGpadls)
	}
	rings := make(map[uint32]uint32) // GPADL id → channel using it as its ring
	for _, ch := range p.chans {
		if ch.State == chanOpen {
			rings[ch.Open.RingGpadlID] = ch.ChannelID
		}
	}
	var pages uint64
	for _, g := range p.gpadls {
		ch := byID[g.ChannelID]
		if ch == nil || ch.State == chanReleased {
			return badState("GPADL %#x of channel %d, which the state does not hold", g.ID, g.ChannelID)
		}
		if !c.OffersSent || !c.HasMemory {
			return badState("GPADL %#x before offers or memory", g.ID)
		}
		if g.Mapped && ch.State != chanOpen {
			return badState("GPADL %#x mapped on channel %d, which is not open", g.ID, g.ChannelID)
		}
		if ringOf, isRing := rings[g.ID]; g.Ring != (isRing && ringOf == g.ChannelID) {
			return badState("GPADL %#x: ring flag %v disagrees with the open channels", g.ID, g.Ring)
		}
		switch g.State {
		case savedAssembling:
			h0 := g.parsed[0].(*protocol.GpadlHeader)
			if h0.GpadlID != g.ID || h0.ChannelID != g.ChannelID {
				return badState("GPADL %#x: its header names GPADL %#x of channel %d", g.ID, h0.GpadlID, h0.ChannelID)
			}
			asm, err := protocol.NewGpadlReassembler(h0)
			if err != nil {
				return badState("GPADL %#x: %v", g.ID, err)
			}
			done := asm.Done()
			for _, m := range g.parsed[1:] {
				b := m.(*protocol.GpadlBody)
				if done || b.GpadlID != g.ID {
					return badState("GPADL %#x: body does not continue it", g.ID)
				}
				if done, err = asm.AddBody(b); err != nil {
					return badState("GPADL %#x: %v", g.ID, err)
				}
			}
			if done {
				return badState("GPADL %#x is complete yet saved as arriving", g.ID)
			}
		case savedTearingDown:
			if !g.Mapped && !g.Ring {
				return badState("GPADL %#x waits for a teardown with nothing using it", g.ID)
			}
			fallthrough
		case savedCreated:
			for _, r := range g.Ranges {
				pages += uint64(len(r.PFNs))
			}
		}
	}
	for id, chID := range rings {
		found := false
		for _, g := range p.gpadls {
			if g.ID == id && g.ChannelID == chID && g.State != savedAssembling && g.Ring {
				found = true
			}
		}
		if !found {
			return badState("channel %d is open on GPADL %#x, which the state lacks", chID, id)
		}
	}
	if pages > h.limits.MaxGpadlPages {
		return badState("GPADLs of %d pages, the limit is %d", pages, h.limits.MaxGpadlPages)
	}
	return nil
}

// restoreGuest rebuilds one guest connection. With own, it takes sg's
// descriptors over (duplicating the borrowed ones first): each one it
// hands to an owner (which closes it on error) is set to none in sg, and
// RestoreOwned closes the rest. Without, it works on duplicates.
func (h *Host) restoreGuest(sg *SavedGuest, id uint64, own bool) (_ *guestConn, err error) {
	p, err := h.parseBus(sg.State)
	if err != nil {
		return nil, err
	}
	if sg.Memory.Valid() != p.conn.HasMemory {
		return nil, badState("memory file given: %v; the state says %v", sg.Memory.Valid(), p.conn.HasMemory)
	}
	if !sg.Conn.Valid() {
		return nil, errors.New("host: no connection file")
	}
	if own {
		if err := sg.Own(); err != nil {
			return nil, err
		}
	} else {
		c, err := sg.dup()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		sg = &c
	}
	if sg.HelloPending && (p.conn.Contacted || p.conn.HasMemory) {
		return nil, badState("the guest's hello is pending, yet it made contact or handed over memory")
	}
	fromFile := transport.FromFile
	if sg.HelloPending {
		fromFile = transport.FromFileBeforeHello
	}
	cf := os.NewFile(uintptr(sg.Conn.Int()), "conn")
	sg.Conn = FD{} // cf's now
	conn, err := fromFile(cf, transport.Host)
	cf.Close() // the Conn has a duplicate, if any
	if err != nil {
		return nil, err
	}
	gc := newGuestConn(h, conn, id)
	gc.detached = true // until built: a failure must not reach the guest
	defer func() {
		if err != nil {
			gc.discard()
		}
	}()
	// Debug, not Info: a successor restoring many guests in its blackout
	// would spend a millisecond on these lines; it logs one summary.
	gc.log.Debug("guest restored")
	c := p.conn
	gc.contacted, gc.version, gc.features = c.Contacted, c.Version, c.Features
	gc.offersSent, gc.shuttingDown, gc.greeted, gc.bad = c.OffersSent, c.ShuttingDown, c.Greeted, int(c.Bad)
	if sg.Memory.Valid() {
		mem, err := guestmem.FromFD(sg.Memory.Int())
		sg.Memory = FD{} // mem's, or closed
		if err != nil {
			return nil, err
		}
		gc.mem = mem
		gc.gpadls.mem = mem
		if mem.Size() != c.MemorySize {
			return nil, badState("guest memory of %d bytes, the state says %d", mem.Size(), c.MemorySize)
		}
	}
	events := make(map[eventKey]*transport.Event)
	defer func() {
		for _, e := range events {
			e.Close()
		}
	}()
	for i := range sg.Events {
		se := &sg.Events[i]
		k := eventKey{se.ChannelID, se.Dir}
		if events[k] != nil || (se.Dir != transport.ToHost && se.Dir != transport.ToGuest) {
			return nil, fmt.Errorf("host: event for channel %d %v given twice or bad", se.ChannelID, se.Dir)
		}
		e, err := transport.AdoptEventFD(se.FD.Int())
		se.FD = FD{} // e's, or closed
		if err != nil {
			return nil, err
		}
		events[k] = e
	}

	// Channels.
	// A guest saved before it asked for offers has no channels yet.
	var maxID uint32
	if len(p.chans) > 0 {
		maxID = p.chans[len(p.chans)-1].ChannelID
	}
	if int(maxID) > len(gc.chans) {
		gc.chans = append(gc.chans, make([]chanState, int(maxID)-len(gc.chans))...)
	}
	for _, ch := range p.chans {
		i := int(ch.ChannelID - 1)
		cs := &gc.chans[i]
		spec := OfferSpec{InterfaceType: ch.Type, InterfaceInstance: ch.Instance, SubchannelIndex: ch.Subchannel, Flags: ch.Flags, MMIOMegabytes: ch.MMIO, UserDefined: ch.UserDefined}
		if ch.Dynamic {
			*cs = chanState{present: true, spec: spec, connID: ch.ConnectionID, dev: waitingDevice{}, waiting: true}
			cs.dynamic = &Offered{gc: gc, channelID: ch.ChannelID, released: make(chan struct{})}
		} else {
			cs.spec = spec // the saved offer is what the guest knows
		}
		cs.rescinded = ch.State == chanRescinded
		cs.released = ch.State == chanReleased
		if cs.rescinded {
			// The save does not carry when the rescind was sent: the
			// guest's time to release it starts again now (Resume
			// arms the timer).
			cs.rescindedAt = time.Now()
		}
	}
	// GPADLs, before the channels that use them open.
	var tearing []*gpadl
	for _, g := range p.gpadls {
		ng := &gpadl{id: g.ID, channelID: g.ChannelID, state: gpadlState(g.State), mapped: g.Mapped, readOnly: g.ReadOnly}
		if ng.state == gpadlTearingDown {
			// The ring of an open channel may be waiting for its
			// teardown: created until the channel has its ring again.
			ng.state = gpadlCreated
			tearing = append(tearing, ng)
		}
		if g.State == savedAssembling {
			ng.asm, _ = protocol.NewGpadlReassembler(g.parsed[0].(*protocol.GpadlHeader))
			for _, m := range g.parsed[1:] {
				ng.asm.AddBody(m.(*protocol.GpadlBody)) //nolint:errcheck // replayed by checkBus already
			}
			ng.msgs = g.Msgs
		} else {
			for _, r := range g.Ranges {
				rg := gpa.Range{ByteCount: r.ByteCount, ByteOffset: r.ByteOffset, PFNs: r.PFNs}
				if err := rg.Validate(); err != nil {
					return nil, badState("GPADL %#x: %v", g.ID, err)
				}
				if err := gc.mem.CheckRange(rg); err != nil {
					return nil, badState("GPADL %#x: %v", g.ID, err)
				}
				ng.ranges = append(ng.ranges, rg)
				ng.pages += uint64(len(r.PFNs))
			}
			gc.gpadls.pages += ng.pages
		}
		gc.gpadls.byID[g.ID] = ng
	}
	// Open channels: the same rings and events.
	take := func(ch uint32, dir transport.Direction) (*transport.Event, error) {
		k := eventKey{ch, dir}
		e := events[k]
		if e == nil {
			return nil, fmt.Errorf("no event file for channel %d %v", ch, dir)
		}
		delete(events, k)
		return e, nil
	}
	for _, ch := range p.chans {
		if ch.State != chanOpen {
			continue
		}
		i := int(ch.ChannelID - 1)
		oc, err := gc.buildOpen(i, ch.Open, take, false)
		if err != nil {
			return nil, badState("channel %d: %v", ch.ChannelID, err)
		}
		if !ch.Dynamic {
			if err := oc.dev.Open(oc.ch); err != nil {
				oc.free()
				return nil, fmt.Errorf("host: device of channel %d refused to reopen: %w", ch.ChannelID, err)
			}
		}
		gc.chans[i].open = oc
	}
	for _, g := range tearing {
		g.state = gpadlTearingDown
	}
	if len(events) > 0 {
		gc.pendingEvents = events
		events = nil
	}
	gc.detached, gc.unresumed = false, true
	return gc, nil
}
