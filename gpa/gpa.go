package gpa

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// PageSize is the VMBus page size; page numbers (PFNs) count these pages.
const (
	PageSize  = 4096
	PageShift = 12
)

// RangeHeaderSize is the fixed part of an encoded range: byte count and
// byte offset, before the page numbers.
const RangeHeaderSize = 8

// ErrMalformed is the sentinel for every structural error in a range list;
// the concrete error is a *RangeError naming the offset and the rule.
var ErrMalformed = errors.New("malformed GPA range")

// RangeError describes a range list that breaks a rule of the wire format.
type RangeError struct {
	Offset int    // byte offset into the parsed slice where the rule broke
	Rule   string // the rule, in words
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("malformed GPA range at offset %d: %s", e.Offset, e.Rule)
}

// Is makes errors.Is(err, ErrMalformed) true for every *RangeError.
func (e *RangeError) Is(target error) bool { return target == ErrMalformed }

// Range is one GPA range: ByteCount bytes starting ByteOffset bytes into the
// first of PFNs, continuing through the following pages in order.
type Range struct {
	ByteCount  uint32
	ByteOffset uint32
	PFNs       []uint64
}

// PagesSpanned is the number of page numbers a range of count bytes starting
// at offset into its first page needs: ceil((offset + count) / PageSize).
// It is computed in 64 bits, so no u32 input overflows.
func PagesSpanned(offset, count uint32) uint64 {
	return (uint64(offset) + uint64(count) + PageSize - 1) >> PageShift
}

// EncodedLen is the number of bytes r occupies on the wire.
func (r Range) EncodedLen() int { return RangeHeaderSize + 8*len(r.PFNs) }

// Validate reports whether r is well formed: a non-zero byte count, an
// offset inside the first page and exactly as many PFNs as pages spanned.
func (r Range) Validate() error {
	switch {
	case r.ByteCount == 0:
		return &RangeError{Rule: "byte count is zero"}
	case r.ByteOffset >= PageSize:
		return &RangeError{Rule: fmt.Sprintf("byte offset %d is not inside the first page", r.ByteOffset)}
	case uint64(len(r.PFNs)) != PagesSpanned(r.ByteOffset, r.ByteCount):
		return &RangeError{Rule: fmt.Sprintf("%d page numbers for a range spanning %d pages",
			len(r.PFNs), PagesSpanned(r.ByteOffset, r.ByteCount))}
	}
	return nil
}

// AppendRange appends the wire form of r to b. It validates r first, so a
// caller cannot put a range on the wire that a peer would reject.
func AppendRange(b []byte, r Range) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return b, err
	}
	b = binary.LittleEndian.AppendUint32(b, r.ByteCount)
	b = binary.LittleEndian.AppendUint32(b, r.ByteOffset)
	for _, pfn := range r.PFNs {
		b = binary.LittleEndian.AppendUint64(b, pfn)
	}
	return b, nil
}

// EncodedLenOf is the wire size of a list of ranges.
func EncodedLenOf(rs []Range) int {
	n := 0
	for _, r := range rs {
		n += r.EncodedLen()
	}
	return n
}

// ParseRanges decodes count ranges laid back to back at the start of b and
// returns them with the number of bytes they occupy.
//
// The ranges are appended to dst and their PFNs to pfns, so a caller that
// reuses both slices parses without allocating; each returned Range's PFNs
// is a sub-slice of the returned pfns buffer. b is read once: the result
// does not alias it, so b may be shared memory the peer keeps changing.
//
// Every rule is checked: count is at least one, each byte count is non-zero,
// each offset lies inside the first page, and the page numbers each range
// needs are all inside b. On error dst and pfns are returned unchanged in
// length.
func ParseRanges(b []byte, count int, dst []Range, pfns []uint64) ([]Range, []uint64, int, error) {
	if count < 1 {
		return dst, pfns, 0, &RangeError{Rule: fmt.Sprintf("range count %d, need at least 1", count)}
	}
	// Each range needs at least its header and one PFN: reject absurd
	// counts before looping over them.
	if count > len(b)/(RangeHeaderSize+8) {
		return dst, pfns, 0, &RangeError{Rule: fmt.Sprintf("range count %d does not fit in %d bytes", count, len(b))}
	}
	dst0, pfns0 := len(dst), len(pfns)
	off := 0
	for i := 0; i < count; i++ {
		if len(b)-off < RangeHeaderSize {
			return dst[:dst0], pfns[:pfns0], 0, &RangeError{Offset: off, Rule: "range header runs past the end"}
		}
		byteCount := binary.LittleEndian.Uint32(b[off:])
		byteOffset := binary.LittleEndian.Uint32(b[off+4:])
		if byteCount == 0 {
			return dst[:dst0], pfns[:pfns0], 0, &RangeError{Offset: off, Rule: "byte count is zero"}
		}
		if byteOffset >= PageSize {
			return dst[:dst0], pfns[:pfns0], 0, &RangeError{Offset: off + 4,
				Rule: fmt.Sprintf("byte offset %d is not inside the first page", byteOffset)}
		}
		pages := PagesSpanned(byteOffset, byteCount)
		avail := uint64(len(b)-off-RangeHeaderSize) / 8
		if pages > avail {
			return dst[:dst0], pfns[:pfns0], 0, &RangeError{Offset: off,
				Rule: fmt.Sprintf("range spans %d pages but only %d page numbers follow", pages, avail)}
		}
		off += RangeHeaderSize
		for p := uint64(0); p < pages; p++ {
			pfns = append(pfns, binary.LittleEndian.Uint64(b[off:]))
			off += 8
		}
		dst = append(dst, Range{ByteCount: byteCount, ByteOffset: byteOffset})
	}
	// Point each new range at its PFNs only now: the appends above may
	// have moved the pfns array.
	p := pfns0
	for i := dst0; i < len(dst); i++ {
		n := int(PagesSpanned(dst[i].ByteOffset, dst[i].ByteCount))
		dst[i].PFNs = pfns[p : p+n : p+n]
		p += n
	}
	return dst, pfns, off, nil
}
