package guestmem

import (
	"fmt"
	"io"
	"math"

	"github.com/govmbus/govmbus/gpa"
)

// Access says what the holder of a view may do with the pages it names.
// A GPADL the guest shares read-only (or a GPA-direct buffer the device
// only reads) becomes a ReadOnly view on the host.
type Access uint8

// The two accesses.
const (
	ReadWrite Access = iota // reads and writes
	ReadOnly                // reads; a write through the view is refused
)

func (a Access) String() string {
	switch a {
	case ReadWrite:
		return "read-write"
	case ReadOnly:
		return "read-only"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// RangeView is guest memory described by a list of GPA ranges (a GPADL, or
// the ranges of a GPA-direct packet), seen as one logical byte sequence:
// the first range's bytes, then the second's, and so on. Every range is
// checked once, when the view is made; the memory's size never changes,
// so the check holds for the view's life.
//
// A RangeView is a value to read; it is safe for concurrent use. Its
// methods may not be used after the Memory is closed.
type RangeView struct {
	mem    *Memory
	ranges []gpa.Range
	size   int64
	access Access
}

// RangeView checks ranges against guest memory and returns a view of them.
// The view keeps ranges (not a copy): the caller must not modify the slice
// or the PFNs afterwards.
func (m *Memory) RangeView(ranges []gpa.Range, access Access) (*RangeView, error) {
	v := new(RangeView)
	if err := m.SetRangeView(v, ranges, access); err != nil {
		return nil, err
	}
	return v, nil
}

// SetRangeView is RangeView into a view the caller owns, for a caller
// that makes one per request and would otherwise allocate each (a
// device's GPA-direct packets). On error v is left as it was. v must not
// be in use meanwhile: a RangeView is safe for concurrent reads, not for
// being set under them.
func (m *Memory) SetRangeView(v *RangeView, ranges []gpa.Range, access Access) error {
	if access != ReadWrite && access != ReadOnly {
		panic(fmt.Sprintf("guestmem: RangeView with invalid %v", access))
	}
	var size int64
	for i, r := range ranges {
		if err := m.CheckRange(r); err != nil {
			return fmt.Errorf("range %d: %w", i, err)
		}
		if size > math.MaxInt64-int64(r.ByteCount) {
			return fmt.Errorf("%w: ranges add up to more than %d bytes", ErrMalformedRange, int64(math.MaxInt64))
		}
		size += int64(r.ByteCount)
	}
	*v = RangeView{mem: m, ranges: ranges, size: size, access: access}
	return nil
}

// Len is the number of bytes the view covers: the sum of the byte counts.
func (v *RangeView) Len() int64 { return v.size }

// Access reports whether the view may be written.
func (v *RangeView) Access() Access { return v.access }

// walk calls fn on the view's page-contiguous pieces covering
// [off, off+n), clipped to the view. Precondition: 0 <= off.
func (v *RangeView) walk(off int64, n int, fn func(seg []byte)) {
	want := uint64(n)
	skip := uint64(off)
	for _, r := range v.ranges {
		if want == 0 {
			return
		}
		if skip >= uint64(r.ByteCount) {
			skip -= uint64(r.ByteCount)
			continue
		}
		for pos := skip; pos < uint64(r.ByteCount) && want > 0; {
			seg := v.mem.segment(r, pos)
			if uint64(len(seg)) > want {
				seg = seg[:want]
			}
			fn(seg)
			pos += uint64(len(seg))
			want -= uint64(len(seg))
		}
		skip = 0
	}
}

// ReadAt copies view bytes from off into p, as io.ReaderAt: fewer than
// len(p) bytes only at the end of the view, with io.EOF.
func (v *RangeView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrOutOfBounds, off)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), v.size-off))
	done := 0
	v.walk(off, n, func(seg []byte) { done += copy(p[done:], seg) })
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the view at off, as io.WriterAt. Writing past the
// end of the view is ErrOutOfBounds and writes nothing; writing a ReadOnly
// view is ErrReadOnly.
func (v *RangeView) WriteAt(p []byte, off int64) (int, error) {
	if v.access != ReadWrite {
		return 0, ErrReadOnly
	}
	if off < 0 || off > v.size || int64(len(p)) > v.size-off {
		return 0, fmt.Errorf("%w: %d bytes at offset %d of a %d-byte view", ErrOutOfBounds, len(p), off, v.size)
	}
	done := 0
	v.walk(off, len(p), func(seg []byte) { done += copy(seg, p[done:]) })
	return done, nil
}

// ReadSegments calls fn on each page-contiguous piece of the view in order,
// stopping at fn's first error. The pieces alias guest memory and are
// lent for reading only, for the duration of the call.
func (v *RangeView) ReadSegments(fn func(seg []byte) error) error {
	return v.segments(fn)
}

// WriteSegments is ReadSegments for a caller that will write the pieces
// (for example reading a file into them); it returns ErrReadOnly without
// calling fn if the view is ReadOnly.
func (v *RangeView) WriteSegments(fn func(seg []byte) error) error {
	if v.access != ReadWrite {
		return ErrReadOnly
	}
	return v.segments(fn)
}

func (v *RangeView) segments(fn func(seg []byte) error) error {
	for _, r := range v.ranges {
		for pos := uint64(0); pos < uint64(r.ByteCount); {
			seg := v.mem.segment(r, pos)
			if err := fn(seg); err != nil {
				return err
			}
			pos += uint64(len(seg))
		}
	}
	return nil
}
