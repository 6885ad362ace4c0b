package host

import (
	"errors"
	"fmt"
	"sync"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
)

// Errors GpadlTable returns to devices.
var (
	// ErrNoGpadl: no created GPADL with that id on this channel (never
	// created, still arriving, or being torn down).
	ErrNoGpadl = errors.New("host: no such GPADL on this channel")
	// ErrGpadlMapped: the GPADL is mapped already; unmap it first.
	ErrGpadlMapped = errors.New("host: GPADL already mapped")
	// ErrGpadlNotMapped: Unmap of a GPADL that is not mapped.
	ErrGpadlNotMapped = errors.New("host: GPADL not mapped")
	// ErrGpadlReadOnly: a writable Map of a GPADL marked read-only.
	ErrGpadlReadOnly = errors.New("host: GPADL is read-only")
)

// A GPADL's life on the host:
//
//	GpadlHeader ──► assembling ──(last GpadlBody, ranges valid)──► created
//	                    │  (bad body/ranges, limits: GpadlCreated failure)  │
//	                    ▼                                                  │
//	                 (gone)        GpadlTeardown, not in use ◄─────────────┤
//	                   ▲           → GpadlTorndown                         │
//	                   │                                                   ▼
//	                   └── last user gone ◄── tearingDown ◄── GpadlTeardown while
//	                       → GpadlTorndown                    mapped or ring of an open channel
//
// "In use" means mapped by a device (GpadlTable.Map) or serving as the ring
// GPADL of an open channel. A teardown waits for both to end, so the guest
// never reuses pages the host still touches.
type gpadlState uint8

const (
	gpadlAssembling gpadlState = iota
	gpadlCreated
	gpadlTearingDown
)

type gpadl struct {
	id, channelID uint32
	state         gpadlState
	asm           *protocol.GpadlReassembler // while assembling
	// msgs are the GpadlHeader and GpadlBody messages received while
	// assembling, as on the wire: a save keeps them and a restore
	// replays them, since the reassembler's partial state is private.
	// Bounded like the reassembler: bodies carry at least one word of a
	// range buffer of at most 64 KiB.
	msgs     [][]byte
	ranges   []gpa.Range // once created
	pages    uint64
	mapped   bool // a device holds a mapping
	readOnly bool // MarkReadOnly: writable maps fail
	ring     bool // the ring GPADL of an open channel
}

// gpadlSet is one guest's GPADLs. The control-plane goroutine adds and
// removes; devices map and unmap from their own goroutines, hence mu.
type gpadlSet struct {
	mu     sync.Mutex
	byID   map[uint32]*gpadl
	pages  uint64 // pages of created GPADLs
	limits Limits
	mem    *guestmem.Memory // nil until the guest handed memory over
	// torndown sends GpadlTorndown for a teardown that completed later,
	// outside mu.
	torndown func(id uint32)
}

func newGpadlSet(l Limits, torndown func(uint32)) *gpadlSet {
	return &gpadlSet{byID: make(map[uint32]*gpadl), limits: l, torndown: torndown}
}

// header starts a GPADL. It returns the status for GpadlCreated and whether
// the GPADL is already complete (then the status is final too).
func (s *gpadlSet) header(h *protocol.GpadlHeader) (status uint32, done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[h.GpadlID]; ok {
		return statusInvalidParameter, true, fmt.Errorf("GPADL id %#x in use", h.GpadlID)
	}
	if len(s.byID) >= s.limits.MaxGpadls {
		return statusInsufficientResource, true, fmt.Errorf("guest has %d GPADLs, the limit", len(s.byID))
	}
	asm, err := protocol.NewGpadlReassembler(h)
	if err != nil {
		return statusInvalidParameter, true, err
	}
	g := &gpadl{id: h.GpadlID, channelID: h.ChannelID, asm: asm}
	g.msgs = append(g.msgs, protocol.Marshal(h))
	s.byID[g.id] = g
	if asm.Done() {
		st, err := s.finishLocked(g)
		return st, true, err
	}
	return 0, false, nil
}

// body continues a GPADL. known is false for a body naming no GPADL being
// assembled (dropped by the caller). When done, status is for GpadlCreated.
func (s *gpadlSet) body(b *protocol.GpadlBody) (channelID, status uint32, known, done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.byID[b.GpadlID]
	if !ok || g.state != gpadlAssembling {
		return 0, 0, false, false, nil
	}
	fin, err := g.asm.AddBody(b)
	if err != nil {
		delete(s.byID, g.id)
		return g.channelID, statusInvalidParameter, true, true, err
	}
	if !fin {
		g.msgs = append(g.msgs, protocol.Marshal(b))
		return g.channelID, 0, true, false, nil
	}
	st, err := s.finishLocked(g)
	return g.channelID, st, true, true, err
}

// finishLocked checks a complete GPADL against guest memory and the page
// limit; on failure it forgets the GPADL. Must hold mu.
func (s *gpadlSet) finishLocked(g *gpadl) (uint32, error) {
	ranges, err := g.asm.Ranges()
	g.asm, g.msgs = nil, nil
	if err != nil {
		delete(s.byID, g.id)
		return statusInvalidParameter, err
	}
	if s.mem == nil {
		delete(s.byID, g.id)
		return statusInvalidParameter, errors.New("guest handed over no memory")
	}
	var pages uint64
	for _, r := range ranges {
		if err := s.mem.CheckRange(r); err != nil {
			delete(s.byID, g.id)
			return statusInvalidParameter, err
		}
		pages += uint64(len(r.PFNs))
	}
	if s.pages+pages > s.limits.MaxGpadlPages {
		delete(s.byID, g.id)
		return statusInsufficientResource, fmt.Errorf("GPADL of %d pages would pass the limit of %d", pages, s.limits.MaxGpadlPages)
	}
	g.ranges, g.pages, g.state = ranges, pages, gpadlCreated
	s.pages += pages
	return statusSuccess, nil
}

// teardown handles GpadlTeardown. It reports whether GpadlTorndown is due
// now; found is false for an unknown id or a channel mismatch.
func (s *gpadlSet) teardown(channelID, id uint32) (found, now bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.byID[id]
	if !ok || g.channelID != channelID || g.state == gpadlTearingDown {
		return false, false
	}
	if g.state == gpadlAssembling {
		// Abandoned half-way: nothing was created, nothing is in use.
		delete(s.byID, id)
		return true, true
	}
	if g.mapped || g.ring {
		g.state = gpadlTearingDown
		return true, false
	}
	s.removeLocked(g)
	return true, true
}

func (s *gpadlSet) removeLocked(g *gpadl) {
	delete(s.byID, g.id)
	s.pages -= g.pages
}

// release ends one use of a GPADL (mapping or ring) and sends the deferred
// GpadlTorndown if a teardown was waiting for it.
func (s *gpadlSet) release(g *gpadl, mapping bool) {
	s.mu.Lock()
	due := s.releaseLocked(g, mapping)
	s.mu.Unlock()
	if due {
		s.torndown(g.id)
	}
}

// releaseLocked is release without the message; it reports whether
// GpadlTorndown is due. Must hold mu.
func (s *gpadlSet) releaseLocked(g *gpadl, mapping bool) bool {
	if mapping {
		g.mapped = false
	} else {
		g.ring = false
	}
	due := g.state == gpadlTearingDown && !g.mapped && !g.ring && s.byID[g.id] == g
	if due {
		s.removeLocked(g)
	}
	return due
}

// acquireRing looks up a created GPADL of channelID to serve as its ring and marks
// it in use.
func (s *gpadlSet) acquireRing(channelID, id uint32) (*gpadl, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.byID[id]
	switch {
	case !ok || g.state == gpadlAssembling:
		return nil, fmt.Errorf("ring GPADL %#x not created", id)
	case g.channelID != channelID:
		return nil, fmt.Errorf("ring GPADL %#x belongs to channel %d", id, g.channelID)
	case g.state != gpadlCreated:
		return nil, fmt.Errorf("ring GPADL %#x is being torn down", id)
	case g.ring:
		return nil, fmt.Errorf("ring GPADL %#x already serves an open channel", id)
	}
	g.ring = true
	return g, nil
}

// dropChannel forgets every GPADL of a channel whose id the guest released
// (Linux does not tear down the GPADLs of a rescinded channel). Nothing may
// use them any more: the channel's device was closed at the rescind.
func (s *gpadlSet) dropChannel(channelID uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.byID {
		if g.channelID == channelID {
			s.removeLocked(g)
		}
	}
}

// GpadlTable gives a device the GPADLs a guest created on one channel: the
// KMCL "GPADL map/unmap". A GPADL has at most one mapping at a time, and a
// guest's teardown of a mapped GPADL completes (GpadlTorndown) only after
// Unmap.
//
// GpadlTable is safe for concurrent use.
type GpadlTable struct {
	set       *gpadlSet
	channelID uint32
}

// Map returns a view of GPADL id's buffer with the given access. The view is
// valid until Unmap, and at the latest until the device's Close returns.
// ErrNoGpadl if the channel has no created GPADL with that id; ErrGpadlMapped
// if it is mapped already.
func (t *GpadlTable) Map(id uint32, access guestmem.Access) (*guestmem.RangeView, error) {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.byID[id]
	if !ok || g.channelID != t.channelID || g.state != gpadlCreated {
		return nil, fmt.Errorf("%w: %#x on channel %d", ErrNoGpadl, id, t.channelID)
	}
	if g.mapped {
		return nil, fmt.Errorf("%w: %#x", ErrGpadlMapped, id)
	}
	if g.readOnly && access != guestmem.ReadOnly {
		return nil, fmt.Errorf("%w: %#x", ErrGpadlReadOnly, id)
	}
	v, err := s.mem.RangeView(g.ranges, access)
	if err != nil {
		return nil, err
	}
	g.mapped = true
	return v, nil
}

// Unmap ends the mapping of GPADL id. If the guest asked to tear the GPADL
// down meanwhile, the teardown completes now.
func (t *GpadlTable) Unmap(id uint32) error {
	s := t.set
	s.mu.Lock()
	g, ok := s.byID[id]
	if !ok || g.channelID != t.channelID || !g.mapped {
		s.mu.Unlock()
		return fmt.Errorf("%w: %#x", ErrGpadlNotMapped, id)
	}
	due := s.releaseLocked(g, true)
	s.mu.Unlock()
	if due {
		s.torndown(id)
	}
	return nil
}

// MarkReadOnly records that the guest shared GPADL id read-only, so that
// every later writable Map of it fails with ErrGpadlReadOnly. The VMBus
// wire has no read-only bit: a VSP learns it from its own protocol (or
// its channel layer's configuration) and marks the GPADL here. The mark
// lasts as long as the GPADL. ErrNoGpadl as for Map.
func (t *GpadlTable) MarkReadOnly(id uint32) error {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.byID[id]
	if !ok || g.channelID != t.channelID || g.state != gpadlCreated {
		return fmt.Errorf("%w: %#x on channel %d", ErrNoGpadl, id, t.channelID)
	}
	g.readOnly = true
	return nil
}
