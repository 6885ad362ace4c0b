package ring

import (
	"encoding/binary"

	"github.com/govmbus/govmbus/gpa"
)

// Reader consumes packets from a ring. Next moves a private read index;
// Commit publishes it, which hands the space back to the writer and ends
// the lifetime of every Packet returned since the previous Commit.
//
// A Reader is not safe for concurrent use. It trusts only the read index it
// keeps itself; the write index is the peer's and is loaded (and
// validated) only when the packets the reader knows of run out.
type Reader struct {
	ring
	out       uint32 // next packet to read, after the unpublished batch
	last      uint32 // where the packet Next returned last begins
	hasLast   bool   // last is set: no Commit, Revert or Unread since
	committed uint32 // read index last published
	in        uint32 // last validated write index
	feature   bool   // the ring uses pending send size (read once)
	err       error  // sticky: the ring is corrupt
	gen       uint64 // batch generation; a Packet is valid while it matches

	hdr    []byte          // copy of the current packet's descriptor and type header
	ranges []gpa.Range     // GPA ranges of the batch's packets
	pfns   []uint64        // their page numbers
	xfer   []TransferRange // transfer ranges of the batch's packets
	wrap   []byte          // assembled payload of a packet that wraps
}

// NewReader opens the reading endpoint of the ring in region, continuing
// from the read index stored there. The region must stay mapped while the
// Reader is in use.
func NewReader(region []byte) (*Reader, error) {
	r, err := newRing(region)
	if err != nil {
		return nil, err
	}
	rd := &Reader{ring: r, feature: r.featureBits.Load()&FeaturePendingSendSize != 0}
	out := r.readIndex.Load()
	if err := r.checkIndex(out, ReadIndexOffset, "read index"); err != nil {
		return nil, err
	}
	in := r.writeIndex.Load()
	if err := r.checkIndex(in, WriteIndexOffset, "write index"); err != nil {
		return nil, err
	}
	rd.out, rd.committed, rd.in = out, out, in
	rd.hdr = make([]byte, 0, 64)
	return rd, nil
}

// Packet is one packet read from the ring. Its header fields are private
// copies, validated before Next returned them. Its payload is a view of
// the shared data area, valid until the Reader's next Commit or Revert;
// using a Packet after that panics, because the writer may already have
// reused the bytes.
type Packet struct {
	Type          PacketType
	Flags         uint16
	TransactionID uint64
	// Offset is where the packet starts in the data area.
	Offset uint32
	// Len is the packet's length in the ring, footer included.
	Len uint32

	// Ranges are the GPA ranges of a TypeGPADirect packet.
	Ranges []gpa.Range

	// TransferPageSet, SenderOwnsSet and TransferRanges are the type
	// header of a TypeTransferPages packet.
	TransferPageSet uint16
	SenderOwnsSet   bool
	TransferRanges  []TransferRange

	a, b []byte // payload: a, then b when the packet wraps
	rd   *Reader
	gen  uint64
}

func (p *Packet) check() {
	if p.rd == nil || p.gen != p.rd.gen {
		panic("ring: Packet used after its batch was committed or reverted")
	}
}

// CompletionRequested reports whether the sender asked for a completion.
func (p *Packet) CompletionRequested() bool { return p.Flags&FlagCompletionRequested != 0 }

// PayloadLen is the payload length, padding included.
func (p *Packet) PayloadLen() int { return len(p.a) + len(p.b) }

// Segments returns the payload without copying: a, then b when the packet
// wraps around the end of the ring (b is empty otherwise). Both alias
// shared memory the peer may still change.
func (p *Packet) Segments() (a, b []byte) {
	p.check()
	return p.a, p.b
}

// Payload returns the payload as one slice. It aliases the ring unless
// the packet wraps; then the two pieces are joined in a buffer the Reader
// owns. Either way it is valid until the next Commit or Revert.
func (p *Packet) Payload() []byte {
	p.check()
	if len(p.b) == 0 {
		return p.a
	}
	rd := p.rd
	rd.wrap = append(append(rd.wrap[:0], p.a...), p.b...)
	return rd.wrap
}

// CopyPayload copies the payload into dst and returns the bytes copied,
// at most len(dst).
func (p *Packet) CopyPayload(dst []byte) int {
	p.check()
	n := copy(dst, p.a)
	if len(p.b) != 0 {
		n += copy(dst[n:], p.b)
	}
	return n
}

// AppendPayload appends the payload to dst.
func (p *Packet) AppendPayload(dst []byte) []byte {
	p.check()
	return append(append(dst, p.a...), p.b...)
}

// Next reads the next unread packet into p. It returns ErrEmpty when there
// is none, or a *CorruptError when the ring breaks a rule; after that the
// Reader stays failed. On error p is left zero. Packets read but not
// committed stay in the ring for the writer.
//
// p is the caller's, so reading allocates nothing and a caller may keep
// as many packets of the batch as it likes (an array of them, say).
func (r *Reader) Next(p *Packet) error {
	if r.nextPlain(p) {
		return nil
	}
	return r.next(p)
}

// nextPlain is Next for the packet most reads are: an in-band packet or a
// completion (no type header to decode) already known to be published,
// lying whole before the end of the data area. It loads the descriptor
// once, as two words, and applies parse's rules to the copies; it returns
// false, having changed nothing, for everything else, which next reads
// or reports.
func (r *Reader) nextPlain(p *Packet) bool {
	start := r.out
	avail := r.used(r.in, start)
	if r.err != nil || avail < descriptorSize+FooterSize || start > r.size-descriptorSize {
		return false
	}
	d := (*[descriptorSize]byte)(r.data[start : start+descriptorSize])
	d0 := binary.LittleEndian.Uint64(d[0:8])
	txid := binary.LittleEndian.Uint64(d[8:16])
	typ := PacketType(d0)
	off := uint32(uint16(d0>>16)) * 8
	end := uint32(uint16(d0>>32)) * 8 // the packet's end without its footer
	flags := uint16(d0 >> 48)
	if typ != TypeInBand && typ != TypeCompletion || flags&^knownFlags != 0 ||
		off < descriptorSize || end < off || end+FooterSize > avail || end > r.size-start {
		return false
	}
	// Field by field: a Packet literal is built on the stack and copied
	// whole, which costs more than the read. The fields a header-less
	// packet leaves empty are stored only when a packet before set them.
	p.Type, p.Flags, p.TransactionID = typ, flags, txid
	p.Offset, p.Len = start, end+FooterSize
	if p.Ranges != nil || p.TransferRanges != nil || p.b != nil || p.TransferPageSet != 0 || p.SenderOwnsSet {
		p.Ranges, p.TransferRanges, p.b = nil, nil, nil
		p.TransferPageSet, p.SenderOwnsSet = 0, false
	}
	p.a = r.data[start+off : start+end : start+end]
	p.rd, p.gen = r, r.gen
	r.last, r.hasLast = start, true
	r.out = r.advance(start, end+FooterSize)
	return true
}

// next is Next for every packet nextPlain does not take, and for an
// empty or failed ring.
func (r *Reader) next(p *Packet) error {
	if r.err != nil {
		*p = Packet{}
		return r.err
	}
	avail := r.used(r.in, r.out)
	if avail == 0 {
		if err := r.refresh(); err != nil {
			*p = Packet{}
			return err
		}
		if avail = r.used(r.in, r.out); avail == 0 {
			*p = Packet{}
			return ErrEmpty
		}
	}
	if err := r.parse(p, avail); err != nil {
		r.err = err
		*p = Packet{}
		return err
	}
	r.last, r.hasLast = r.out, true
	r.out = r.advance(r.out, p.Len)
	return nil
}

// Unread returns the packet Next returned last to the unread state, so
// that the next Next returns it again, and reports whether there was one
// (none after a Commit, a Revert or another Unread). Unlike Revert it
// leaves the packets read before it in the batch. The packet must not be
// used after it.
func (r *Reader) Unread() bool {
	if !r.hasLast {
		return false
	}
	r.out, r.hasLast = r.last, false
	return true
}

// refresh loads the write index once and validates it.
func (r *Reader) refresh() error {
	in := r.writeIndex.Load()
	if err := r.checkIndex(in, WriteIndexOffset, "write index"); err != nil {
		r.err = err
		return err
	}
	// The writer may not take back packets it published: an index that
	// falls inside what this reader already consumed would make the
	// unread span wrap around the whole ring.
	if r.used(in, r.committed) < r.used(r.out, r.committed) {
		err := corruptControl(WriteIndexOffset, "write index %#x moved back over packets already read (up to %#x)", in, r.out)
		r.err = err
		return err
	}
	r.in = in
	return nil
}

// parse validates the packet at r.out, of which avail bytes are published,
// into p.
func (r *Reader) parse(p *Packet, avail uint32) error {
	start := r.out
	if avail < descriptorSize+FooterSize {
		return corruptData(start, "%d bytes published, less than the smallest packet", avail)
	}
	// One load of each half of the descriptor; every decision below uses
	// these copies. start is 8-aligned, so a descriptor splits at the end
	// of the ring only between its halves.
	d0 := binary.LittleEndian.Uint64(r.data[start:])
	d1 := binary.LittleEndian.Uint64(r.data[r.advance(start, 8):])
	typ := PacketType(d0)
	off8 := uint16(d0 >> 16)
	len8 := uint16(d0 >> 32)
	flags := uint16(d0 >> 48)
	*p = Packet{
		Type:          typ,
		Flags:         flags,
		TransactionID: d1,
		Offset:        start,
		rd:            r,
		gen:           r.gen,
	}
	switch {
	case !typ.known():
		return corruptData(start, "unknown packet type %d", uint16(typ))
	case off8 < 2:
		return corruptData(start, "data offset %d (8-byte units) is below 2", off8)
	case len8 < off8:
		return corruptData(start, "length %d is below data offset %d (8-byte units)", len8, off8)
	case uint32(len8)*8+FooterSize > avail:
		return corruptData(start, "packet of %d bytes with footer, only %d bytes published", uint32(len8)*8+FooterSize, avail)
	case flags&^knownFlags != 0:
		return corruptData(start, "unknown flags %#x", flags)
	}
	dataOff := uint32(off8) * 8
	p.Len = uint32(len8)*8 + FooterSize

	if typ == TypeGPADirect || typ == TypeTransferPages {
		if err := r.parseTypeHeader(p, dataOff); err != nil {
			return err
		}
	}

	payLen := uint32(len8-off8) * 8
	ps := r.advance(start, dataOff)
	if end := uint64(ps) + uint64(payLen); end <= uint64(r.size) {
		p.a = r.data[ps : ps+payLen : ps+payLen]
	} else {
		first := r.size - ps
		p.a = r.data[ps:r.size:r.size]
		p.b = r.data[: payLen-first : payLen-first]
	}
	return nil
}

// parseTypeHeader copies the type header of a GPA-direct or transfer-page
// packet out of the ring, once, and decodes its ranges from the copy.
func (r *Reader) parseTypeHeader(p *Packet, dataOff uint32) error {
	start := p.Offset
	hlen := dataOff - descriptorSize
	if hlen < typeHeaderSize {
		return corruptData(start, "%s packet with data offset %d leaves no room for its type header", p.Type, dataOff)
	}
	// hlen is below 64 KiB × 8 and inside the published bytes (checked).
	if cap(r.hdr) < int(hlen) {
		r.hdr = make([]byte, hlen)
	}
	h := r.hdr[:hlen]
	r.get(r.advance(start, descriptorSize), h)
	count := binary.LittleEndian.Uint32(h[4:])

	if p.Type == TypeGPADirect {
		if count == 0 {
			return corruptData(start, "GPA-direct packet with range count 0")
		}
		if uint64(count) > uint64(hlen-typeHeaderSize)/(gpa.RangeHeaderSize+8) {
			return corruptData(start, "GPA-direct range count %d does not fit in a %d-byte header", count, hlen)
		}
		r0 := len(r.ranges)
		var err error
		r.ranges, r.pfns, _, err = gpa.ParseRanges(h[typeHeaderSize:], int(count), r.ranges, r.pfns)
		if err != nil {
			return corruptData(start, "GPA-direct ranges: %v", err)
		}
		p.Ranges = r.ranges[r0:len(r.ranges):len(r.ranges)]
		return nil
	}

	p.TransferPageSet = binary.LittleEndian.Uint16(h[0:])
	p.SenderOwnsSet = h[2] != 0
	if count == 0 {
		return corruptData(start, "transfer-page packet with range count 0")
	}
	if uint64(count)*transferRange > uint64(hlen-typeHeaderSize) {
		return corruptData(start, "transfer-page range count %d does not fit in a %d-byte header", count, hlen)
	}
	x0 := len(r.xfer)
	for i := uint32(0); i < count; i++ {
		b := h[typeHeaderSize+i*transferRange:]
		r.xfer = append(r.xfer, TransferRange{
			Count:  binary.LittleEndian.Uint32(b[0:]),
			Offset: binary.LittleEndian.Uint32(b[4:]),
		})
	}
	p.TransferRanges = r.xfer[x0:len(r.xfer):len(r.xfer)]
	return nil
}

// endBatch starts a new generation: packets of the old one are dead.
func (r *Reader) endBatch() {
	r.gen++
	r.hasLast = false
	r.ranges = r.ranges[:0]
	r.pfns = r.pfns[:0]
	r.xfer = r.xfer[:0]
}

// Commit publishes the read index, ending the batch, and reports whether
// the writer must be signalled (ReaderShouldSignal). Packets returned
// before Commit must not be used after it.
func (r *Reader) Commit() (signal bool) {
	if r.out == r.committed {
		r.endBatch()
		return false
	}
	old := r.committed
	publish(r.readIndex, r.out)
	r.committed = r.out
	r.endBatch()
	if !r.feature {
		return false
	}
	// Free space is measured against the writer's current index: loads
	// after our store, as the writer's re-check in WaitFor is ordered.
	in := r.writeIndex.Load()
	if in >= r.size || in%8 != 0 {
		r.err = corruptControl(WriteIndexOffset, "write index %#x is not a valid index", in)
		return false
	}
	pss := r.pendingSend.Load()
	before := r.size - r.used(in, old)
	after := r.size - r.used(in, r.out)
	return ReaderShouldSignal(true, pss, before, after)
}

// Revert returns every packet read since the last Commit to the unread
// state; they will be read again. Packets already returned must not be
// used after it.
func (r *Reader) Revert() {
	r.out = r.committed
	r.endBatch()
}

// Pending is the number of published bytes the reader has not consumed
// yet, by the write index it loaded last.
func (r *Reader) Pending() int { return int(r.used(r.in, r.out)) }

// DisableInterrupts sets the interrupt mask: the reader is draining and the
// writer need not signal it.
func (r *Reader) DisableInterrupts() { r.interruptMask.Store(1) }

// EnableInterrupts clears the interrupt mask before the reader sleeps, then
// loads the write index again. If it returns true, a packet arrived in
// between (the writer may have seen the mask still set and not signalled):
// the reader must keep reading instead of sleeping.
func (r *Reader) EnableInterrupts() (more bool, err error) {
	if r.err != nil {
		return false, r.err
	}
	publish(r.interruptMask, 0)
	if err := r.refresh(); err != nil {
		return false, err
	}
	return r.in != r.out, nil
}

// Err is the sticky error that stopped the reader, if any.
func (r *Reader) Err() error { return r.err }
