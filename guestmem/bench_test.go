package guestmem

import (
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

// benchRange is a 64 KiB range over scattered pages starting mid-page,
// the shape of a large GPA-direct I/O.
func benchRange(b *testing.B) (*Memory, gpa.Range) {
	m, err := New(64 * PageSize)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	r := gpa.Range{ByteCount: 16 * PageSize, ByteOffset: 512}
	for i := 0; i < 17; i++ {
		r.PFNs = append(r.PFNs, uint64((i*37)%64))
	}
	return m, r
}

func BenchmarkReadRange(b *testing.B) {
	m, r := benchRange(b)
	dst := make([]byte, r.ByteCount)
	b.ReportAllocs()
	b.SetBytes(int64(r.ByteCount))
	for b.Loop() {
		if _, err := m.ReadRange(r, dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteRange(b *testing.B) {
	m, r := benchRange(b)
	src := make([]byte, r.ByteCount)
	b.ReportAllocs()
	b.SetBytes(int64(r.ByteCount))
	for b.Loop() {
		if _, err := m.WriteRange(r, src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangeViewReadAt(b *testing.B) {
	m, r := benchRange(b)
	v, err := m.RangeView([]gpa.Range{r}, ReadOnly)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		if _, err := v.ReadAt(dst, 1000); err != nil {
			b.Fatal(err)
		}
	}
}
