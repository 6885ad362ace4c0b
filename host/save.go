package host

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/transport"
)

// SavedGuest is one guest connection as a servicing host hands it to its
// successor: the descriptors the guest's state lives in, and the bus
// state (a saved state of scope savedstate.ScopeBus).
//
// SaveGuests returns the descriptors borrowed from the saving host (see
// FD): a servicing passes their numbers to the successor's exec as they
// are. Own turns them into duplicates of the SavedGuest's own, for a
// restore in the same process after a failed exec. Close closes those it
// owns.
type SavedGuest struct {
	ID   uint64 // the guest's Guest.ID in the saving host; a restored guest keeps it (0: it gets a fresh one)
	Conn FD     // the transport socket (transport.Conn.Descriptor)
	// HelloPending: the guest's transport hello had not been received; it
	// is still in the socket (transport.FromFileBeforeHello).
	HelloPending bool
	Memory       FD           // guest memory, none if the guest handed none over yet
	Events       []SavedEvent // the events of open channels, and events handed over for an open still to come
	State        []byte       // the bus state
}

// SavedEvent is one channel event's descriptor.
type SavedEvent struct {
	ChannelID uint32
	Dir       transport.Direction
	FD        FD
}

// FD is a saved descriptor: none (the zero FD), one its holder owns, or
// one borrowed from the host that saved it, valid until that host's
// Close. The number of a borrowed FD may be handed to an exec (package
// servicing), never closed or changed by the borrower.
//
// An FD is a value: copies share the descriptor, and Close on one of them
// makes the others stale, as with any descriptor number.
type FD struct {
	n     int32 // the descriptor + 1; 0 is none
	owned bool
}

// OwnedFD is an FD of descriptor fd that its holder owns: Close closes
// it, and RestoreOwned takes it over. A negative fd is none.
func OwnedFD(fd int) FD {
	if fd < 0 || fd >= 1<<31-1 {
		return FD{}
	}
	return FD{n: int32(fd) + 1, owned: true}
}

// borrowedFD is an FD of a descriptor that stays its lender's.
func borrowedFD(fd int) FD {
	if fd < 0 || fd >= 1<<31-1 {
		return FD{}
	}
	return FD{n: int32(fd) + 1}
}

// Valid reports whether d is a descriptor, not none.
func (d FD) Valid() bool { return d.n != 0 }

// Int is d's descriptor number, -1 for none.
func (d FD) Int() int { return int(d.n) - 1 }

// Owned reports whether d's holder owns the descriptor (Close closes it).
func (d FD) Owned() bool { return d.n != 0 && d.owned }

// Close closes d's descriptor if d owns it, and makes d none either way.
func (d *FD) Close() error {
	fd, owned := d.Int(), d.Owned()
	*d = FD{}
	if owned {
		return unix.Close(fd)
	}
	return nil
}

// Dup is an owned duplicate of d (close-on-exec); none for none.
func (d FD) Dup() (FD, error) {
	if !d.Valid() {
		return FD{}, nil
	}
	nfd, err := unix.FcntlInt(uintptr(d.Int()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return FD{}, fmt.Errorf("host: dup: %w", err)
	}
	return OwnedFD(nfd), nil
}

// own makes d owned, duplicating it if it is borrowed.
func (d *FD) own() error {
	if !d.Valid() || d.owned {
		return nil
	}
	nd, err := d.Dup()
	if err != nil {
		return err
	}
	*d = nd
	return nil
}

// Own makes every descriptor of s its own: each borrowed one is replaced
// by a duplicate (close-on-exec), so that s outlives the host that saved
// it. A servicing calls it only when its exec failed, before closing the
// old host, to restore in the same process. On error the descriptors
// already duplicated stay in s (Close closes them) and the rest stay
// borrowed.
func (s *SavedGuest) Own() error {
	if err := s.Conn.own(); err != nil {
		return err
	}
	if err := s.Memory.own(); err != nil {
		return err
	}
	for i := range s.Events {
		if err := s.Events[i].FD.own(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes every descriptor s owns and makes them all none.
func (s *SavedGuest) Close() error {
	var errs []error
	errs = append(errs, s.Conn.Close(), s.Memory.Close())
	for i := range s.Events {
		errs = append(errs, s.Events[i].FD.Close())
	}
	return errors.Join(errs...)
}

// SaveGuests saves every connected guest's bus state for a successor
// process (servicing). It parks each guest's control plane between two
// messages (what the guest sends meanwhile waits in the socket for the
// successor), records the state, and from then on the host says nothing
// more to the guest. The descriptors it returns are h's, borrowed (FD):
// no duplicate is made, and they are valid until h.Close. Close after
// SaveGuests closes the devices and these descriptors, and the guest
// notices nothing as long as a copy of each lives on: in the successor an
// exec made in between, or in duplicates SavedGuest.Own made first.
//
// Preconditions: stop accepting new guests first, and pause (and save)
// the server channels of package channel: their rings are theirs to save.
// SaveGuests on a host whose guests were saved already saves them again.
// If it fails, the guests are resumed as if nothing happened. A guest
// whose connection Serve accepted before it stopped is saved too (SaveGuests
// waits until it is registered); one that is gone or leaving is not.
func (h *Host) SaveGuests() ([]SavedGuest, error) {
	h.accepting.Wait()
	h.mu.Lock()
	guests := make([]*guestConn, 0, len(h.guests))
	for gc := range h.guests {
		guests = append(guests, gc)
	}
	h.mu.Unlock()
	sort.Slice(guests, func(i, j int) bool { return guests[i].id < guests[j].id })

	// Ask every guest's loop to park first, then wait for each: the loops
	// wake up and park side by side, not one after another.
	parked := make([]<-chan struct{}, len(guests))
	for i, gc := range guests {
		parked[i] = gc.pause.pause()
	}
	var live []*guestConn
	for i, gc := range guests {
		select {
		case <-parked[i]:
			live = append(live, gc)
		case <-gc.done:
		}
	}
	// The parked guests are independent: each is saved on its own
	// goroutine (a few at a time), inside the servicing's blackout.
	out := make([]SavedGuest, len(live))
	errs := make([]error, len(live))
	var wg sync.WaitGroup
	sem := make(chan struct{}, restoreParallel)
	for i, gc := range live {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			out[i], errs[i] = gc.save()
			<-sem
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		for j := range out {
			out[j].Close()
		}
		for _, gc := range live {
			gc.mu.Lock()
			gc.detached = false
			gc.mu.Unlock()
			gc.pause.unpause()
		}
		return nil, fmt.Errorf("host: save guest %d: %w", live[i].id, err)
	}
	return out, nil
}

// save records one parked guest and detaches it.
func (gc *guestConn) save() (sg SavedGuest, err error) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	defer func() {
		if err != nil {
			sg.Close()
			sg = SavedGuest{}
		}
	}()
	sg.ID, sg.HelloPending = gc.id, !gc.c.HelloSeen()
	cfd, err := gc.c.Descriptor()
	if err != nil {
		return sg, err
	}
	sg.Conn = borrowedFD(cfd)
	if gc.mem == nil {
		// The guest's memory may have been read by the transport without
		// an InitiateContact yet: it must reach the successor too.
		if mem, terr := gc.c.TakeMemory(); terr == nil {
			gc.mem = mem
			gc.gpadls.mu.Lock()
			gc.gpadls.mem = mem
			gc.gpadls.mu.Unlock()
		}
	}
	if gc.mem != nil {
		sg.Memory = borrowedFD(gc.mem.Descriptor())
	}
	gpadls := gc.gpadls.snapshot()
	recs := make([]savedstate.Record, 1, 1+len(gc.chans)+len(gpadls))
	recs[0] = savedstate.Record{Kind: KindBusConnection, Flags: savedstate.FlagCritical, Body: gc.connRecord().encode()}
	sg.Events = make([]SavedEvent, 0, 2*len(gc.chans)+len(gc.pendingEvents))
	addEvent := func(id uint32, dir transport.Direction, e *transport.Event) error {
		fd, err := e.Descriptor()
		if err != nil {
			return err
		}
		sg.Events = append(sg.Events, SavedEvent{ChannelID: id, Dir: dir, FD: borrowedFD(fd)})
		return nil
	}
	for i := range gc.chans {
		cs := &gc.chans[i]
		if !cs.present {
			continue
		}
		id := uint32(i + 1)
		recs = append(recs, savedstate.Record{Kind: KindBusChannel, Flags: savedstate.FlagCritical, Body: gc.chanRecord(i).encode()})
		if cs.open != nil {
			if err := addEvent(id, transport.ToHost, cs.open.evFrom); err != nil {
				return sg, err
			}
			if err := addEvent(id, transport.ToGuest, cs.open.evTo); err != nil {
				return sg, err
			}
			continue
		}
		// Events handed over for an OpenChannel still in the socket.
		for _, dir := range []transport.Direction{transport.ToHost, transport.ToGuest} {
			if e, terr := gc.c.TakeEvent(id, dir); terr == nil {
				if gc.pendingEvents == nil {
					gc.pendingEvents = make(map[eventKey]*transport.Event)
				}
				if old := gc.pendingEvents[eventKey{id, dir}]; old != nil {
					old.Close()
				}
				gc.pendingEvents[eventKey{id, dir}] = e
			}
		}
	}
	keys := make([]eventKey, 0, len(gc.pendingEvents))
	for k := range gc.pendingEvents {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].channelID != keys[j].channelID {
			return keys[i].channelID < keys[j].channelID
		}
		return keys[i].dir < keys[j].dir
	})
	for _, k := range keys {
		if err := addEvent(k.channelID, k.dir, gc.pendingEvents[k]); err != nil {
			return sg, err
		}
	}
	for _, g := range gpadls {
		recs = append(recs, savedstate.Record{Kind: KindBusGpadl, Flags: savedstate.FlagCritical, Body: g.encode()})
	}
	s, err := savedstate.NewSaver(savedstate.ScopeBus, busIdentity, recs)
	if err != nil {
		return sg, err
	}
	sg.State = s.Bytes()
	gc.detached = true
	return sg, nil
}

func (gc *guestConn) connRecord() *connRecord {
	r := &connRecord{
		Contacted:    gc.contacted,
		Version:      gc.version,
		Features:     gc.features,
		OffersSent:   gc.offersSent,
		ShuttingDown: gc.shuttingDown,
		Greeted:      gc.greeted,
		Bad:          uint32(gc.bad),
	}
	if gc.contacted {
		r.MessageConn = messageConnFor(gc.version)
	}
	if gc.mem != nil {
		r.HasMemory, r.MemorySize = true, gc.mem.Size()
	}
	return r
}

// messageConnFor is the message connection id VersionResponse gave.
func messageConnFor(v protocol.Version) uint32 {
	if v >= protocol.VersionWin10RS31 {
		return MessageConnectionID
	}
	return 0
}

func (gc *guestConn) chanRecord(i int) *chanRecord {
	cs := &gc.chans[i]
	r := &chanRecord{
		ChannelID:    uint32(i + 1),
		Dynamic:      cs.dynamic != nil,
		Type:         cs.spec.InterfaceType,
		Instance:     cs.spec.InterfaceInstance,
		Subchannel:   cs.spec.SubchannelIndex,
		Flags:        cs.spec.Flags,
		MMIO:         cs.spec.MMIOMegabytes,
		UserDefined:  cs.spec.UserDefined,
		ConnectionID: cs.connID,
	}
	switch {
	case cs.released:
		r.State = chanReleased
	case cs.rescinded:
		r.State = chanRescinded
	case cs.open != nil:
		r.State = chanOpen
		p := cs.open.ch.Params
		r.Open = &p
	}
	return r
}

// snapshot is every GPADL's saved form, by id.
func (s *gpadlSet) snapshot() []*gpadlRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*gpadlRecord, 0, len(s.byID))
	for _, g := range s.byID {
		r := &gpadlRecord{ID: g.id, ChannelID: g.channelID, State: uint8(g.state), Mapped: g.mapped, ReadOnly: g.readOnly, Ring: g.ring}
		if g.state == gpadlAssembling {
			r.Msgs = g.msgs
		}
		if len(g.ranges) > 0 {
			r.Ranges = make([]rangeRecord, len(g.ranges))
			for i, rg := range g.ranges {
				r.Ranges[i] = rangeRecord{ByteCount: rg.ByteCount, ByteOffset: rg.ByteOffset, PFNs: rg.PFNs}
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
