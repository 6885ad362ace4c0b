package channel

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/ring"
)

// TransferRange is one range of a transfer-page packet: Count bytes at
// Offset in the packet's transfer page set (a receive buffer).
type TransferRange = ring.TransferRange

// PacketFlagTransferPages says the packet is a transfer-page packet: its
// data lies in a receive buffer this client registered with
// AddTransferPageSet (Packet.TransferRanges, Packet.ReadTransferRange).
// Such a packet carries PacketFlagExternalData too, as KMCL indicates it.
const PacketFlagTransferPages PacketFlags = 0x2

// maxTransferEntries bounds the transfer-page packets of one set awaiting
// the guest's completion: the allocator's queue of them is allocated once.
const maxTransferEntries = 1 << 14

// TransferPageSet is a receive buffer for transfer-page packets (the
// netvsc receive path): a GPADL the client created, known to both ends
// under a set id the client picks and announces in its device protocol.
//
// On a server (MapTransferPageSet) the set hands out ranges of the
// buffer to SendTransferPages and takes each back only when the guest
// completes the packet that named it, so a range the guest still reads is
// never written again. On a client (AddTransferPageSet) it is what
// incoming transfer-page packets are checked against.
type TransferPageSet struct {
	c     *Channel
	id    uint16
	gpadl uint32
	view  *guestmem.RangeView
	size  uint64

	// The server's allocator, a ring over the buffer in virtual
	// positions (offset = position mod size): head is where the next
	// range starts, tail where the oldest range not given back starts.
	// ents holds one entry per packet in flight, oldest first; a packet
	// completed out of order is marked done and its bytes come back once
	// every older one's did. Under mu, which nests inside sendMu.
	mu          sync.Mutex
	head, tail  uint64
	ents        []transferEntry
	first, next uint64 // sequence numbers of the oldest entry and the next
}

// transferEntry is the allocation of one packet: [start, end) in virtual
// positions, start including what was skipped to avoid wrapping.
type transferEntry struct {
	start, end uint64
	done       bool
}

// ID is the transfer page set id.
func (s *TransferPageSet) ID() uint16 { return s.id }

// Gpadl is the GPADL id of the buffer.
func (s *TransferPageSet) Gpadl() uint32 { return s.gpadl }

// Size is the buffer's size in bytes.
func (s *TransferPageSet) Size() uint64 { return s.size }

// InUse is the number of bytes of the buffer named by packets the guest
// has not completed yet (server), alignment and skipped tails included.
func (s *TransferPageSet) InUse() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head - s.tail
}

// MapTransferPageSet maps GPADL gpadl, which the guest created on this
// server channel, writable, and makes it transfer page set id: the
// buffer SendTransferPages fills. The guest announces both numbers in the
// device's own protocol. One set per id; the mapping ends with the
// channel (or UnmapGpadl, after which the set must not be used).
func (c *Channel) MapTransferPageSet(id uint16, gpadl uint32) (*TransferPageSet, error) {
	if err := c.serverOnly("MapTransferPageSet"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	_, dup := c.xsets[id]
	c.mu.Unlock()
	if dup {
		return nil, fail(StatusInvalidParameter, "transfer page set %#x exists", id)
	}
	v, err := c.MapGpadl(gpadl, AccessReadWrite)
	if err != nil {
		return nil, err
	}
	s := &TransferPageSet{c: c, id: id, gpadl: gpadl, view: v, size: uint64(v.Len()), ents: make([]transferEntry, maxTransferEntries)}
	c.mu.Lock()
	if c.xsets == nil {
		c.xsets = make(map[uint16]*TransferPageSet)
	}
	c.xsets[id] = s
	c.mu.Unlock()
	return s, nil
}

// AddTransferPageSet registers GPADL gpadl, which this client channel
// created, as transfer page set id: incoming transfer-page packets naming
// id are indicated with their ranges checked against it. Packets naming
// another set are dropped (see readBatch). Allowed while the channel is
// open, after CreateGpadl.
func (c *Channel) AddTransferPageSet(id uint16, gpadl uint32) error {
	if err := c.clientOnly("AddTransferPageSet"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.gpadls[gpadl]
	switch {
	case !ok:
		return fail(StatusInvalidParameter, "no GPADL %#x on this channel", gpadl)
	case c.ep == nil:
		return fail(StatusInvalidDeviceState, "AddTransferPageSet on a channel that is not open")
	case c.xsets[id] != nil:
		return fail(StatusInvalidParameter, "transfer page set %#x exists", id)
	}
	v, err := c.ep.mem.RangeView(g.ranges, AccessReadOnly)
	if err != nil {
		return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	if c.xsets == nil {
		c.xsets = make(map[uint16]*TransferPageSet)
	}
	c.xsets[id] = &TransferPageSet{c: c, id: id, gpadl: gpadl, view: v, size: uint64(v.Len())}
	return nil
}

// RemoveTransferPageSet forgets set id (before the GPADL is deleted, on
// a client; once no packet naming it is in flight, on a server). Later
// packets naming it are dropped (client) or cannot be sent (server).
func (c *Channel) RemoveTransferPageSet(id uint16) {
	c.mu.Lock()
	delete(c.xsets, id)
	c.mu.Unlock()
}

// alloc takes n bytes (n > 0, a multiple of 8) in one piece and returns
// the entry's sequence number and the offset in the buffer; ok is false
// when the buffer (or the entry queue) has no room now.
func (s *TransferPageSet) alloc(n uint64) (seq, off uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.size || s.next-s.first >= uint64(len(s.ents)) {
		return 0, 0, false
	}
	pos := s.head
	if o := pos % s.size; o+n > s.size {
		pos += s.size - o // a range is one piece: skip the buffer's tail
	}
	if pos+n-s.tail > s.size {
		return 0, 0, false
	}
	seq = s.next
	s.ents[seq%uint64(len(s.ents))] = transferEntry{start: s.head, end: pos + n}
	s.next++
	s.head = pos + n
	return seq, pos % s.size, true
}

// free gives back the allocation seq: its bytes are reused once every
// older allocation was given back too.
func (s *TransferPageSet) free(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.first || seq >= s.next {
		return
	}
	k := uint64(len(s.ents))
	s.ents[seq%k].done = true
	for s.first < s.next && s.ents[s.first%k].done {
		s.tail = s.ents[s.first%k].end
		s.first++
	}
	if s.first == s.next {
		s.tail = s.head
	}
}

// transferAlign is the alignment of every range a server hands out.
const transferAlign = 8

// SendTransferPages copies each of data into a range of set, the receive
// buffer, and sends a transfer-page packet naming those ranges, with
// payload inline (the device's message about them). The ranges stay the
// guest's until it completes the packet; only then are they reused.
// SendWaitForCompletion is required (the completion is what returns the
// ranges). Server channels only; data holds 1 to SetMaxExternalData's
// chain length pieces, none empty. A set with no room now gives
// StatusInsufficientResources and sends nothing: the VSP waits for
// completions (or answers another way). The copy into the buffer and the
// send allocate nothing.
func (p *OutPacket) SendTransferPages(payload []byte, set *TransferPageSet, data [][]byte, flags SendFlags) error {
	c := p.c
	if c == nil {
		panic("channel: send of a freed packet")
	}
	if err := c.serverOnly("SendTransferPages"); err != nil {
		return err
	}
	switch {
	case set == nil || set.c != c || set.ents == nil:
		return fail(StatusInvalidParameter, "transfer page set of another channel, or of a client")
	case flags&SendWaitForCompletion == 0:
		return fail(StatusInvalidParameter, "transfer pages need SendWaitForCompletion")
	case len(data) == 0 || len(data) > c.cfg.maxExtChain:
		return fail(StatusInvalidParameter, "%d transfer ranges: want 1 to %d", len(data), c.cfg.maxExtChain)
	}
	var total uint64
	for _, d := range data {
		if len(d) == 0 || uint64(len(d)) > math.MaxUint32 {
			return fail(StatusInvalidParameter, "a transfer range of %d bytes", len(d))
		}
		total += alignUp(uint64(len(d)))
	}
	seq, off, ok := set.alloc(total)
	if !ok {
		return fail(StatusInsufficientResources, "transfer page set %#x has no %d bytes free", set.id, total)
	}
	p.xr = p.xr[:0]
	for _, d := range data {
		if _, err := set.view.WriteAt(d, int64(off)); err != nil {
			set.free(seq)
			return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
		}
		p.xr = append(p.xr, TransferRange{Count: uint32(len(d)), Offset: uint32(off)})
		off += alignUp(uint64(len(d)))
	}
	p.xset, p.xseq = set, seq
	err := p.send(payload, nil, flags, false)
	if err != nil {
		p.releaseTransfer()
	}
	return err
}

func alignUp(n uint64) uint64 { return (n + transferAlign - 1) &^ (transferAlign - 1) }

// releaseTransfer gives back the ranges of a transfer-page packet whose
// send ended (the guest completed it, the send failed, or the channel
// closed). Idempotent.
func (p *OutPacket) releaseTransfer() {
	if s := p.xset; s != nil {
		p.xset = nil
		s.free(p.xseq)
	}
}

// ErrTransferPages is the cause of a transfer-page packet a client
// dropped (Stats.TransferPagesDropped counts them).
var ErrTransferPages = errors.New("channel: bad transfer-page packet")

// checkTransfer validates the ranges of an incoming transfer-page packet
// against the client's sets, copying them into dst (the packet's own) and
// sorting a second copy in scratch to find overlaps. It returns the set,
// or an error saying why the packet is dropped. Nothing is read from
// shared memory here: the ranges are the ring reader's private copy.
func checkTransfer(sets map[uint16]*TransferPageSet, id uint16, ranges []TransferRange, maxRanges int, maxBytes uint64, dst, scratch *[]TransferRange) (*TransferPageSet, error) {
	s := sets[id]
	if s == nil {
		return nil, fmt.Errorf("%w: unknown transfer page set %#x", ErrTransferPages, id)
	}
	if len(ranges) == 0 || len(ranges) > maxRanges {
		return nil, fmt.Errorf("%w: %d ranges, want 1 to %d", ErrTransferPages, len(ranges), maxRanges)
	}
	var total uint64
	for i, r := range ranges {
		end := uint64(r.Offset) + uint64(r.Count)
		if r.Count == 0 || end > s.size {
			return nil, fmt.Errorf("%w: range %d (%d bytes at %d) outside the %d-byte buffer", ErrTransferPages, i, r.Count, r.Offset, s.size)
		}
		total += uint64(r.Count)
	}
	if total > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes in ranges, more than %d", ErrTransferPages, total, maxBytes)
	}
	*dst = append((*dst)[:0], ranges...)
	if len(ranges) > 1 {
		sc := append((*scratch)[:0], ranges...)
		*scratch = sc
		slices.SortFunc(sc, func(a, b TransferRange) int {
			switch {
			case a.Offset < b.Offset:
				return -1
			case a.Offset > b.Offset:
				return 1
			}
			return 0
		})
		for i := 1; i < len(sc); i++ {
			if uint64(sc[i-1].Offset)+uint64(sc[i-1].Count) > uint64(sc[i].Offset) {
				return nil, fmt.Errorf("%w: ranges at %d and %d overlap", ErrTransferPages, sc[i-1].Offset, sc[i].Offset)
			}
		}
	}
	return s, nil
}

// TransferPageSet is the set id of a transfer-page packet and whether it
// is one.
func (p *Packet) TransferPageSet() (id uint16, ok bool) {
	if p.xset == nil {
		return 0, false
	}
	return p.xset.id, true
}

// TransferRanges are the ranges of a transfer-page packet, checked: each
// inside the receive buffer, none overlapping. The slice is the packet's
// own, valid until it is completed; nil for other packets.
func (p *Packet) TransferRanges() []TransferRange {
	if p.xset == nil {
		return nil
	}
	return p.xr
}

// ReadTransferRange copies the bytes of range i of a transfer-page packet
// out of the receive buffer into dst and returns how many it copied (at
// most len(dst)). The host may still write the buffer: a driver reads
// each range once, with this, and checks only its copy. It allocates
// nothing.
func (p *Packet) ReadTransferRange(i int, dst []byte) (int, error) {
	if p.xset == nil || i < 0 || i >= len(p.xr) {
		return 0, fail(StatusInvalidParameter, "no transfer range %d", i)
	}
	r := p.xr[i]
	n := min(len(dst), int(r.Count))
	if _, err := p.xset.view.ReadAt(dst[:n], int64(r.Offset)); err != nil {
		return 0, fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	return n, nil
}
