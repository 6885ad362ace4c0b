package ring

import (
	"encoding/binary"
	"fmt"

	"github.com/govmbus/govmbus/gpa"
)

// Writer appends packets to a ring. Packets written since the last Commit
// form a batch the reader cannot see yet; Commit publishes the whole batch
// with one store of the write index, and Revert drops it.
//
// A Writer is not safe for concurrent use. It trusts only the write index
// it keeps itself; the read index is the peer's and is loaded (and
// validated) only when the space the writer knows of runs out.
type Writer struct {
	ring
	in        uint32 // next write position, after the uncommitted batch
	committed uint32 // write index last published
	out       uint32 // last validated read index
	pending   bool   // a pending send size is set and must be cleared
	feature   bool   // the ring uses pending send size (read once)
	err       error  // sticky: the reader corrupted its index

	// published counts the bytes Commit ever published, and signalledAt
	// is published at the last Commit that asked for a signal (valid
	// once signalled): a monitor tells from them whether unread bytes
	// were ever announced to the reader (Progress).
	published   uint64
	signalledAt uint64
	signalled   bool

	hdr []byte // scratch for type headers, reused
}

var zeros [8]byte

// NewWriter opens the writing endpoint of the ring in region, continuing
// from the write index stored there. The region must stay mapped while the
// Writer is in use.
func NewWriter(region []byte) (*Writer, error) {
	r, err := newRing(region)
	if err != nil {
		return nil, err
	}
	w := &Writer{ring: r, feature: r.featureBits.Load()&FeaturePendingSendSize != 0}
	in := r.writeIndex.Load()
	if err := r.checkIndex(in, WriteIndexOffset, "write index"); err != nil {
		return nil, err
	}
	out := r.readIndex.Load()
	if err := r.checkIndex(out, ReadIndexOffset, "read index"); err != nil {
		return nil, err
	}
	w.in, w.committed, w.out = in, in, out
	return w, nil
}

// OutPacket describes a packet to write, apart from its payload. The zero
// value with Type set is a plain packet of that type.
type OutPacket struct {
	Type          PacketType
	Flags         uint16
	TransactionID uint64

	// Ranges are the GPA ranges of a TypeGPADirect packet (at least one).
	Ranges []gpa.Range

	// TransferPageSet, SenderOwnsSet and TransferRanges make up the type
	// header of a TypeTransferPages packet (at least one range).
	TransferPageSet uint16
	SenderOwnsSet   bool
	TransferRanges  []TransferRange
}

// WriteInBand appends an in-band packet whose payload is the
// concatenation of pieces (nothing is concatenated in memory).
func (w *Writer) WriteInBand(txid uint64, flags uint16, pieces ...[]byte) error {
	return w.writeOne(TypeInBand, flags, txid, pieces)
}

// WriteCompletion appends a completion for transaction txid.
func (w *Writer) WriteCompletion(txid uint64, pieces ...[]byte) error {
	return w.writeOne(TypeCompletion, 0, txid, pieces)
}

// maxOnePayload is the largest payload writeOne takes: with the
// descriptor, it is the most a descriptor's length can describe.
const maxOnePayload = MaxPacketLen - descriptorSize

// writeOne is write for the packet most sends are: no type header, one
// payload piece, and room for it up to the end of the data area by the
// read index already known. It stores each word of the packet once and
// calls nothing but the payload's copy, since at small payloads the
// general path's loops over pieces, its empty header copy and its
// padding clear cost more than the packet. Every other case (an error,
// several pieces, a wrap, a full ring by the cached read index, a pending
// send size to clear) goes to write unchanged, as the tail of this call,
// so that the exported wrappers keep nothing live across it.
func (w *Writer) writeOne(typ PacketType, flags uint16, txid uint64, pieces [][]byte) error {
	if len(pieces) != 1 || len(pieces[0]) > maxOnePayload || flags&^knownFlags != 0 || w.pending || w.err != nil {
		return w.write(typ, flags, txid, nil, pieces)
	}
	p := pieces[0]
	n := uint32(len(p))
	total := descriptorSize + (n+7)&^7 // at most MaxPacketLen
	need := total + FooterSize
	start := w.in
	if w.size-w.used(start, w.out) <= need || need > w.size-start {
		return w.write(typ, flags, txid, nil, pieces)
	}
	dst := w.data[start : start+need : start+need]
	// The footer is the packet's start in its high half; two 32-bit
	// stores, since the compiler splits a 64-bit store of start<<32 into
	// bytes.
	f := (*[FooterSize]byte)(dst[total:])
	binary.LittleEndian.PutUint32(f[0:4], 0)
	binary.LittleEndian.PutUint32(f[4:8], start)
	if total-descriptorSize != n {
		// The padding is the tail of the last payload word: zero the
		// word, and the copy below overwrites its payload bytes.
		binary.LittleEndian.PutUint64(dst[total-8:], 0)
	}
	copy(dst[descriptorSize:], p)
	d := (*[descriptorSize]byte)(dst)
	binary.LittleEndian.PutUint64(d[0:8], uint64(typ)|descriptorSize/8<<16|uint64(total/8)<<32|uint64(flags)<<48)
	binary.LittleEndian.PutUint64(d[8:16], txid)
	if start += need; start == w.size {
		start = 0
	}
	w.in = start
	return nil
}

// Write appends a packet of any supported type, building its type header
// from p. The payload is the concatenation of pieces.
func (w *Writer) Write(p *OutPacket, pieces ...[]byte) error {
	hdr := w.hdr[:0]
	switch p.Type {
	case TypeInBand, TypeCompletion:
	case TypeGPADirect:
		if len(p.Ranges) == 0 {
			return fmt.Errorf("ring: GPA-direct packet without ranges")
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, 0)
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(p.Ranges)))
		for _, r := range p.Ranges {
			var err error
			if hdr, err = gpa.AppendRange(hdr, r); err != nil {
				w.hdr = hdr
				return fmt.Errorf("ring: %w", err)
			}
		}
	case TypeTransferPages:
		if len(p.TransferRanges) == 0 {
			return fmt.Errorf("ring: transfer-page packet without ranges")
		}
		var owns byte
		if p.SenderOwnsSet {
			owns = 1
		}
		hdr = binary.LittleEndian.AppendUint16(hdr, p.TransferPageSet)
		hdr = append(hdr, owns, 0)
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(p.TransferRanges)))
		for _, tr := range p.TransferRanges {
			hdr = binary.LittleEndian.AppendUint32(hdr, tr.Count)
			hdr = binary.LittleEndian.AppendUint32(hdr, tr.Offset)
		}
	default:
		return fmt.Errorf("ring: cannot write packet type %d", uint16(p.Type))
	}
	w.hdr = hdr
	return w.write(p.Type, p.Flags, p.TransactionID, hdr, pieces)
}

func (w *Writer) write(typ PacketType, flags uint16, txid uint64, hdr []byte, pieces [][]byte) error {
	if w.err != nil {
		return w.err
	}
	if flags&^knownFlags != 0 {
		return fmt.Errorf("ring: unknown packet flags %#x", flags)
	}
	n := 0
	for _, p := range pieces {
		n += len(p)
		if n > MaxPacketLen {
			return fmt.Errorf("%w: payload over %d bytes", ErrTooLarge, MaxPacketLen)
		}
	}
	dataOff := descriptorSize + len(hdr)
	total := PacketLen(len(hdr), n) - FooterSize
	if total > MaxPacketLen {
		return fmt.Errorf("%w: packet of %d bytes, a descriptor describes at most %d", ErrTooLarge, total, MaxPacketLen)
	}
	need := uint32(total + FooterSize)
	if err := w.reserve(need); err != nil {
		return err
	}

	start := w.in
	if uint64(start)+uint64(need) <= uint64(w.size) {
		w.in = w.fill(w.data[start:start+need:start+need], start, typ, dataOff, total, flags, txid, hdr, pieces)
	} else {
		w.in = w.fillWrapped(start, typ, dataOff, total, flags, txid, hdr, pieces)
	}
	if w.pending {
		// The space the writer waited for is here: stop asking the
		// reader to wake us.
		w.pendingSend.Store(0)
		w.pending = false
	}
	return nil
}

// descriptorWord packs type, data offset and length (in 8-byte units) and
// flags, the first eight bytes of a descriptor, into one u64.
func descriptorWord(typ PacketType, dataOff, total int, flags uint16) uint64 {
	return uint64(typ) | uint64(dataOff/8)<<16 | uint64(total/8)<<32 | uint64(flags)<<48
}

// fill lays out a packet in dst, a contiguous piece of the data area
// starting at index start, and returns the index after it.
func (w *Writer) fill(dst []byte, start uint32, typ PacketType, dataOff, total int, flags uint16, txid uint64, hdr []byte, pieces [][]byte) uint32 {
	// The descriptor's four u16 fields as one little-endian u64 store.
	binary.LittleEndian.PutUint64(dst[0:], descriptorWord(typ, dataOff, total, flags))
	binary.LittleEndian.PutUint64(dst[8:], txid)
	off := descriptorSize + copy(dst[descriptorSize:], hdr)
	for _, p := range pieces {
		off += copy(dst[off:], p)
	}
	clear(dst[off:total])
	binary.LittleEndian.PutUint64(dst[total:], uint64(start)<<32)
	return w.advance(start, uint32(total+FooterSize))
}

// fillWrapped lays out a packet that runs past the end of the data area,
// piece by piece.
func (w *Writer) fillWrapped(start uint32, typ PacketType, dataOff, total int, flags uint16, txid uint64, hdr []byte, pieces [][]byte) uint32 {
	var desc [descriptorSize]byte
	binary.LittleEndian.PutUint64(desc[0:], descriptorWord(typ, dataOff, total, flags))
	binary.LittleEndian.PutUint64(desc[8:], txid)
	off := w.put(start, desc[:])
	if len(hdr) > 0 {
		off = w.put(off, hdr)
	}
	n := 0
	for _, p := range pieces {
		off = w.put(off, p)
		n += len(p)
	}
	if pad := PayloadLen(n) - n; pad > 0 {
		off = w.put(off, zeros[:pad])
	}
	var footer [FooterSize]byte
	binary.LittleEndian.PutUint64(footer[:], uint64(start)<<32)
	return w.put(off, footer[:])
}

// reserve checks that need bytes fit after the uncommitted batch, loading
// the peer's read index only when the cached one says they do not.
func (w *Writer) reserve(need uint32) error {
	if need > w.size-8 {
		return fmt.Errorf("%w: packet of %d bytes with footer, ring of %d bytes holds at most %d",
			ErrTooLarge, need, w.size, w.size-8)
	}
	if w.size-w.used(w.in, w.out) > need {
		return nil
	}
	if err := w.refresh(); err != nil {
		return err
	}
	if w.size-w.used(w.in, w.out) > need {
		return nil
	}
	return ErrFull
}

// refresh loads the read index once and validates it.
func (w *Writer) refresh() error {
	out := w.readIndex.Load()
	if err := w.checkIndex(out, ReadIndexOffset, "read index"); err != nil {
		w.err = err
		return err
	}
	// A read index inside the uncommitted batch would let the writer
	// overwrite packets it has not published; the reader cannot have read
	// them, so such an index is a lie.
	if w.used(w.in, out) < w.used(w.in, w.committed) {
		err := corruptControl(ReadIndexOffset, "read index %#x is inside the unpublished batch [%#x, %#x)",
			out, w.committed, w.in)
		w.err = err
		return err
	}
	w.out = out
	return nil
}

// Commit publishes the batch and reports whether the reader must be
// signalled (WriterShouldSignal). Committing an empty batch publishes
// nothing and never signals.
func (w *Writer) Commit() (signal bool) {
	if w.in == w.committed {
		return false
	}
	old := w.committed
	publish(w.writeIndex, w.in)
	w.committed = w.in
	w.published += uint64(w.used(w.in, old))
	// Loads after the store: seen in this order, a reader that went idle
	// before our store is caught by either its re-check or our signal.
	if WriterShouldSignal(w.interruptMask.Load(), w.readIndex.Load(), old) {
		w.signalledAt, w.signalled = w.published, true
		return true
	}
	return false
}

// Progress is what a Writer knows of its own publishing, for a monitor
// judging whether the reader was told of the bytes it has not read
// (Writer.Progress).
type Progress struct {
	// WriteIndex is the write index last published: the writer's own
	// copy, not the shared field the reader could overwrite.
	WriteIndex uint32
	// Published counts the bytes ever published by this Writer.
	Published uint64
	// SignalledAt is Published as it was at the last Commit that asked
	// for a signal; Signalled says there was one.
	SignalledAt uint64
	Signalled   bool
}

// Progress returns the writer's publishing so far. Like every method of
// the Writer, it must not run concurrently with the others.
func (w *Writer) Progress() Progress {
	return Progress{WriteIndex: w.committed, Published: w.published, SignalledAt: w.signalledAt, Signalled: w.signalled}
}

// Told reports whether the reader was asked to be signalled after the
// oldest of the unread bytes before the write index was published: a
// reader asleep on them then slept through a signal it was sent (or never
// read it), rather than missing one that was never sent. Bytes a
// predecessor wrote (more unread than this Writer published) were not
// announced by this Writer.
func (p Progress) Told(unread uint32) bool {
	if !p.Signalled || uint64(unread) > p.Published {
		return false
	}
	return p.SignalledAt > p.Published-uint64(unread)
}

// Revert drops every packet written since the last Commit.
func (w *Writer) Revert() { w.in = w.committed }

// Buffered is the number of bytes written but not yet committed.
func (w *Writer) Buffered() int { return int(w.used(w.in, w.committed)) }

// Free is the number of bytes a packet (with its footer) may take now,
// after loading the peer's read index.
func (w *Writer) Free() (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.refresh(); err != nil {
		return 0, err
	}
	return int(w.size-w.used(w.in, w.out)) - 8, nil
}

// WaitFor prepares a writer that got ErrFull to sleep: it asks the reader,
// through the pending send size, to signal once need payload bytes of an
// in-band packet fit, then checks the space again. If ready is true the
// space is already there and the writer should write instead of sleeping;
// otherwise it sleeps until signalled and writes again. The request is
// cleared by the next successful write.
//
// A writer may ask in the middle of a batch, and must Commit before it
// sleeps. The reader measures free space against the write index it can
// see, so the request counts the uncommitted batch too: asked for the
// packet alone, a reader that frees the room before the batch is
// published would already have more free space than asked for, and
// would never see it cross the mark (nor signal).
//
// size is the payload length (without descriptor, type header or footer)
// of the packet the writer waits to send; headerBytes is its type header.
func (w *Writer) WaitFor(payload, headerBytes int) (ready bool, err error) {
	if w.err != nil {
		return false, w.err
	}
	if !w.feature {
		return false, ErrNoPendingSend
	}
	total := PacketLen(headerBytes, payload)
	if uint64(total) > uint64(w.size-8) {
		return false, fmt.Errorf("%w: packet of %d bytes with footer can never fit", ErrTooLarge, total)
	}
	need := uint32(total)
	ask := min(uint64(need)+uint64(w.used(w.in, w.committed)), uint64(w.size))
	publish(w.pendingSend, pendingSendFor(uint32(ask), w.size))
	w.pending = true
	if err := w.refresh(); err != nil {
		return false, err
	}
	if w.size-w.used(w.in, w.out) > need {
		w.pendingSend.Store(0)
		w.pending = false
		return true, nil
	}
	return false, nil
}

// Err is the sticky error that stopped the writer, if any.
func (w *Writer) Err() error { return w.err }
