package guestmem

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

// FuzzRangeAccess feeds peer-chosen ranges to every accessor of a small
// guest memory: none may fault, and an error must mean nothing was copied.
func FuzzRangeAccess(f *testing.F) {
	f.Add(uint32(100), uint32(4000), []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(4096), uint32(0), []byte{3, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(1), uint32(4095), []byte{4, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(0xFFFFFFFF), uint32(0), []byte{})
	m, err := New(4 * PageSize)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	buf := make([]byte, 3*PageSize)
	f.Fuzz(func(t *testing.T, count, offset uint32, pfnBytes []byte) {
		r := gpa.Range{ByteCount: count, ByteOffset: offset}
		for len(pfnBytes) >= 8 {
			r.PFNs = append(r.PFNs, binary.LittleEndian.Uint64(pfnBytes))
			pfnBytes = pfnBytes[8:]
		}
		n, err := m.ReadRange(r, buf)
		if err != nil && (n != 0 || !(errors.Is(err, ErrOutOfBounds) || errors.Is(err, ErrMalformedRange))) {
			t.Fatalf("ReadRange: %d, %v", n, err)
		}
		if err == nil && n != int(min(uint64(count), uint64(len(buf)))) {
			t.Fatalf("ReadRange copied %d of %d", n, count)
		}
		if n2, err2 := m.WriteRange(r, buf); (err2 == nil) != (err == nil) || n2 != n {
			t.Fatalf("WriteRange %d, %v disagrees with ReadRange %d, %v", n2, err2, n, err)
		}
		total := 0
		if err3 := m.Segments(r, func(seg []byte) error { total += len(seg); return nil }); (err3 == nil) != (err == nil) || (err == nil && total != int(count)) {
			t.Fatalf("Segments: %v, %d bytes", err3, total)
		}
		if v, err4 := m.RangeView([]gpa.Range{r}, ReadOnly); err4 == nil {
			if v.Len() != int64(count) {
				t.Fatalf("view of %d bytes", v.Len())
			}
			v.ReadAt(buf, int64(offset))
		}
	})
}
