package guestmem

import (
	"fmt"

	"github.com/govmbus/govmbus/gpa"
)

// CheckRange reports whether r is well formed (gpa.Range.Validate) and
// every page it names lies inside guest memory. Every accessor below runs
// it before touching a byte, so a bad range copies nothing.
func (m *Memory) CheckRange(r gpa.Range) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedRange, err)
	}
	for i, pfn := range r.PFNs {
		if pfn >= m.pages {
			return fmt.Errorf("%w: page %d of the range is PFN %#x, guest memory has %d pages",
				ErrOutOfBounds, i, pfn, m.pages)
		}
	}
	return nil
}

// segment returns the bytes of the checked range r from byte pos of the
// range to the end of the page holding it or the end of the range,
// whichever comes first. Precondition: pos < r.ByteCount.
func (m *Memory) segment(r gpa.Range, pos uint64) []byte {
	abs := uint64(r.ByteOffset) + pos
	start := r.PFNs[abs>>PageShift]<<PageShift + abs&(PageSize-1)
	n := min(PageSize-abs&(PageSize-1), uint64(r.ByteCount)-pos)
	return m.data[start : start+n : start+n]
}

// Segments calls fn once per page-contiguous piece of the bytes r
// describes, in order, and stops at the first error fn returns (which
// Segments returns). The pieces alias guest memory: fn may read or write
// them and must not keep them past Close. Segments allocates nothing, so
// it suits zero-copy I/O such as reading a file straight into the pages of
// a GPA-direct packet.
func (m *Memory) Segments(r gpa.Range, fn func(seg []byte) error) error {
	if err := m.CheckRange(r); err != nil {
		return err
	}
	for pos := uint64(0); pos < uint64(r.ByteCount); {
		seg := m.segment(r, pos)
		if err := fn(seg); err != nil {
			return err
		}
		pos += uint64(len(seg))
	}
	return nil
}

// ReadRange copies the bytes r describes into dst and returns how many it
// copied: min(len(dst), r.ByteCount). It copies nothing if r is bad.
func (m *Memory) ReadRange(r gpa.Range, dst []byte) (int, error) {
	if err := m.CheckRange(r); err != nil {
		return 0, err
	}
	total := min(uint64(len(dst)), uint64(r.ByteCount))
	for pos := uint64(0); pos < total; {
		pos += uint64(copy(dst[pos:total], m.segment(r, pos)))
	}
	return int(total), nil
}

// WriteRange copies src into the bytes r describes and returns how many
// it copied: min(len(src), r.ByteCount). It copies nothing if r is bad.
func (m *Memory) WriteRange(r gpa.Range, src []byte) (int, error) {
	if err := m.CheckRange(r); err != nil {
		return 0, err
	}
	total := min(uint64(len(src)), uint64(r.ByteCount))
	for pos := uint64(0); pos < total; {
		pos += uint64(copy(m.segment(r, pos), src[pos:total]))
	}
	return int(total), nil
}
