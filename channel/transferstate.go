package channel

import (
	"github.com/govmbus/govmbus/savedstate"
)

// KindChannelTransferPages: one transfer page set of a server channel
// (MapTransferPageSet) with its allocator and the ranges each packet
// still holds, so that a restored channel reuses no range the guest has
// not given back. After the device record, before the packets; written
// only by a channel with a set (docs/SAVED_STATE.md).
const KindChannelTransferPages savedstate.Kind = 0x0007

// Bounds on a transfer-page record, which is hostile input.
const (
	maxSavedSets     = 64
	maxSavedXRanges  = 1 << 13
	maxTransferSpace = 1 << 40 // a GPADL of 8190-page ranges cannot pass it
)

// transferRecord is KindChannelTransferPages's body.
type transferRecord struct {
	ID      uint16           `json:"set_id"`
	Gpadl   uint32           `json:"gpadl"`
	Size    uint64           `json:"size"`
	Head    uint64           `json:"head"`
	Tail    uint64           `json:"tail"`
	First   uint64           `json:"first"`
	Entries []transferEntry  `json:"-"`
	Packets []transferPacket `json:"packets"`
}

// transferPacket is one packet's hold on a set: its slot, allocation and
// ranges.
type transferPacket struct {
	Slot   uint32          `json:"slot"`
	Seq    uint64          `json:"allocation"`
	Ranges []TransferRange `json:"ranges"`
}

func (r *transferRecord) encode() []byte {
	var e savedstate.Encoder
	e.U16(r.ID).U16(0).U32(r.Gpadl).U64(r.Size).U64(r.Head).U64(r.Tail).U64(r.First)
	e.U32(uint32(len(r.Entries)))
	for _, en := range r.Entries {
		e.U64(en.start).U64(en.end).Bool(en.done)
	}
	e.U32(uint32(len(r.Packets)))
	for _, p := range r.Packets {
		e.U32(p.Slot).U64(p.Seq).U32(uint32(len(p.Ranges)))
		for _, tr := range p.Ranges {
			e.U32(tr.Count).U32(tr.Offset)
		}
	}
	return e.Body()
}

// decodeTransfer decodes a transfer-page record and checks it on its own:
// the allocator's entries chain from tail to head inside the buffer, the
// oldest is not done, every packet holds one live entry with ranges
// inside the buffer, and every live entry is held by one packet.
func decodeTransfer(b []byte) (*transferRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &transferRecord{ID: d.U16()}
	d.U16()
	r.Gpadl, r.Size, r.Head, r.Tail, r.First = d.U32(), d.U64(), d.U64(), d.U64(), d.U64()
	n := d.Count(17)
	if n > maxTransferEntries {
		d.Fail("%d allocations", n)
		n = 0
	}
	r.Entries = make([]transferEntry, n)
	for i := range r.Entries {
		r.Entries[i] = transferEntry{start: d.U64(), end: d.U64(), done: d.Bool()}
	}
	m := d.Count(16)
	if m > n {
		d.Fail("%d packets for %d allocations", m, n)
		m = 0
	}
	r.Packets = make([]transferPacket, m)
	total := 0
	for i := range r.Packets {
		p := &r.Packets[i]
		p.Slot, p.Seq = d.U32(), d.U64()
		k := d.Count(8)
		if total += k; total > maxSavedXRanges {
			d.Fail("more than %d ranges", maxSavedXRanges)
			break
		}
		p.Ranges = make([]TransferRange, k)
		for j := range p.Ranges {
			p.Ranges[j] = TransferRange{Count: d.U32(), Offset: d.U32()}
		}
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	switch {
	case r.Size == 0 || r.Size > maxTransferSpace:
		d.Fail("a buffer of %d bytes", r.Size)
	case r.Head < r.Tail || r.Head-r.Tail > r.Size || r.Head > 1<<62:
		d.Fail("head %d and tail %d of a %d-byte buffer", r.Head, r.Tail, r.Size)
	case r.First > 1<<62:
		d.Fail("allocation %d", r.First)
	case len(r.Entries) == 0 && r.Head != r.Tail:
		d.Fail("%d bytes in use without allocations", r.Head-r.Tail)
	}
	pos := r.Tail
	for i, en := range r.Entries {
		if d.Failed() {
			break
		}
		switch {
		case en.start != pos || en.end < en.start || en.end-en.start > r.Size:
			d.Fail("allocation %d spans %d..%d after %d", i, en.start, en.end, pos)
		case i == 0 && en.done:
			d.Fail("the oldest allocation is given back but still listed")
		}
		pos = en.end
	}
	if !d.Failed() && pos != r.Head {
		d.Fail("allocations end at %d, the head is %d", pos, r.Head)
	}
	held := make(map[uint64]bool, len(r.Packets))
	slots := make(map[uint32]bool, len(r.Packets))
	for i, p := range r.Packets {
		if d.Failed() {
			break
		}
		idx := p.Seq - r.First
		switch {
		case p.Seq < r.First || idx >= uint64(len(r.Entries)) || r.Entries[idx].done || held[p.Seq]:
			d.Fail("packet %d holds allocation %d, which is not live or held twice", i, p.Seq)
		case slots[p.Slot] || p.Slot >= maxOutPackets:
			d.Fail("packet slot %d", p.Slot)
		case len(p.Ranges) == 0:
			d.Fail("packet %d without ranges", i)
		}
		held[p.Seq], slots[p.Slot] = true, true
		for j, tr := range p.Ranges {
			if tr.Count == 0 || uint64(tr.Offset)+uint64(tr.Count) > r.Size {
				d.Fail("packet %d range %d (%d bytes at %d) outside the buffer", i, j, tr.Count, tr.Offset)
				break
			}
		}
	}
	for i, en := range r.Entries {
		if !d.Failed() && !en.done && !held[r.First+uint64(i)] {
			d.Fail("allocation %d is live and held by no packet", r.First+uint64(i))
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// transferRecords snapshots the server's sets. Must hold sendMu (no
// packet changes its hold) and not mu.
func (c *Channel) transferRecordsLocked() []*transferRecord {
	c.mu.Lock()
	sets := make([]*TransferPageSet, 0, len(c.xsets))
	for _, s := range c.xsets {
		sets = append(sets, s)
	}
	c.mu.Unlock()
	if len(sets) == 0 {
		return nil
	}
	bySet := make(map[*TransferPageSet]*transferRecord, len(sets))
	var recs []*transferRecord
	for _, s := range sets {
		s.mu.Lock()
		r := &transferRecord{ID: s.id, Gpadl: s.gpadl, Size: s.size, Head: s.head, Tail: s.tail, First: s.first}
		k := uint64(len(s.ents))
		for q := s.first; q < s.next; q++ {
			r.Entries = append(r.Entries, s.ents[q%k])
		}
		s.mu.Unlock()
		bySet[s] = r
		recs = append(recs, r)
	}
	for _, p := range c.outSlots {
		if p != nil && p != reservedSlot && p.c == c && p.xset != nil && p.state != outIdle {
			if r := bySet[p.xset]; r != nil {
				r.Packets = append(r.Packets, transferPacket{Slot: p.slot, Seq: p.xseq, Ranges: append([]TransferRange(nil), p.xr...)})
			}
		}
	}
	// One order for one state: by set id.
	for i := 1; i < len(recs); i++ {
		for j := i; j > 0 && recs[j].ID < recs[j-1].ID; j-- {
			recs[j], recs[j-1] = recs[j-1], recs[j]
		}
	}
	return recs
}

// restoredSet builds a set from its record, without a view: reattach
// maps the buffer again.
func restoredSet(c *Channel, r *transferRecord) *TransferPageSet {
	s := &TransferPageSet{c: c, id: r.ID, gpadl: r.Gpadl, size: r.Size, ents: make([]transferEntry, maxTransferEntries),
		head: r.Head, tail: r.Tail, first: r.First, next: r.First + uint64(len(r.Entries))}
	k := uint64(len(s.ents))
	for i, en := range r.Entries {
		s.ents[(r.First+uint64(i))%k] = en
	}
	return s
}

// HasTransferPageSets reports whether the channel has transfer page sets
// (MapTransferPageSet): its saved state then holds transfer-page records,
// which a servicing host's successor must be able to read.
func (v ServicingView) HasTransferPageSets() bool {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return len(v.c.xsets) > 0
}

// TransferPageSet is the server's set id, as MapTransferPageSet made it
// or a restore brought it back (mapped again at Enable); nil if none.
func (c *Channel) TransferPageSet(id uint16) *TransferPageSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.xsets[id]
}
