package guestmem

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

// fill gives every byte of m a value that depends on its address, so a
// read from the wrong page or offset shows.
func fill(m *Memory) {
	b := m.Bytes()
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
}

// expect is what ReadRange should return for r, computed the slow way.
func expect(m *Memory, r gpa.Range) []byte {
	var out []byte
	for i := uint32(0); i < r.ByteCount; i++ {
		abs := uint64(r.ByteOffset) + uint64(i)
		out = append(out, m.Bytes()[r.PFNs[abs/PageSize]*PageSize+abs%PageSize])
	}
	return out
}

func TestReadRangeScattered(t *testing.T) {
	g, h := pair(t, 8)
	fill(g)
	for _, r := range []gpa.Range{
		{ByteCount: 1, ByteOffset: 0, PFNs: []uint64{0}},
		{ByteCount: PageSize, ByteOffset: 0, PFNs: []uint64{7}},
		{ByteCount: 100, ByteOffset: PageSize - 50, PFNs: []uint64{5, 2}},
		{ByteCount: 3 * PageSize, ByteOffset: 1, PFNs: []uint64{6, 0, 3, 1}},
		{ByteCount: 2 * PageSize, ByteOffset: 0, PFNs: []uint64{4, 4}},
	} {
		want := expect(g, r)
		got := make([]byte, r.ByteCount+10)
		n, err := h.ReadRange(r, got)
		if err != nil || n != int(r.ByteCount) || !bytes.Equal(got[:n], want) {
			t.Errorf("ReadRange(%+v) = %d, %v; bytes equal %v", r, n, err, bytes.Equal(got[:n], want))
		}
		// A short destination takes a prefix.
		short := make([]byte, r.ByteCount/2)
		if n, err := h.ReadRange(r, short); err != nil || n != len(short) || !bytes.Equal(short, want[:n]) {
			t.Errorf("short ReadRange(%+v) = %d, %v", r, n, err)
		}
		var segs []byte
		if err := h.Segments(r, func(seg []byte) error {
			if len(seg) == 0 || len(seg) > PageSize {
				t.Errorf("segment of %d bytes", len(seg))
			}
			segs = append(segs, seg...)
			return nil
		}); err != nil || !bytes.Equal(segs, want) {
			t.Errorf("Segments(%+v): %v, equal %v", r, err, bytes.Equal(segs, want))
		}
	}
}

func TestWriteRangeScattered(t *testing.T) {
	g, h := pair(t, 4)
	r := gpa.Range{ByteCount: PageSize + 200, ByteOffset: PageSize - 100, PFNs: []uint64{3, 0, 2}}
	src := bytes.Repeat([]byte("0123456789abcdef"), (PageSize+200)/16+1)
	n, err := h.WriteRange(r, src)
	if err != nil || n != int(r.ByteCount) {
		t.Fatalf("WriteRange = %d, %v", n, err)
	}
	if got := expect(g, r); !bytes.Equal(got, src[:n]) {
		t.Fatal("guest sees different bytes")
	}
	// The bytes around the range are untouched.
	if g.Bytes()[3*PageSize+PageSize-101] != 0 || g.Bytes()[2*PageSize+100] != 0 {
		t.Fatal("wrote outside the range")
	}
}

func TestBadRanges(t *testing.T) {
	_, m := pair(t, 4)
	for _, tc := range []struct {
		r    gpa.Range
		want error
	}{
		{gpa.Range{ByteCount: 1, PFNs: []uint64{4}}, ErrOutOfBounds},
		{gpa.Range{ByteCount: 1, PFNs: []uint64{^uint64(0)}}, ErrOutOfBounds},
		{gpa.Range{ByteCount: 2 * PageSize, PFNs: []uint64{0, 1 << 52}}, ErrOutOfBounds},
		{gpa.Range{ByteCount: PageSize + 1, PFNs: []uint64{0}}, ErrMalformedRange},
		{gpa.Range{ByteCount: 10, ByteOffset: PageSize - 5, PFNs: []uint64{0}}, ErrMalformedRange},
		{gpa.Range{ByteCount: 10, ByteOffset: PageSize, PFNs: []uint64{0, 1}}, ErrMalformedRange},
		{gpa.Range{ByteCount: 0, PFNs: []uint64{0}}, ErrMalformedRange},
		{gpa.Range{ByteCount: 10}, ErrMalformedRange},
		{gpa.Range{ByteCount: 10, PFNs: []uint64{0, 1}}, ErrMalformedRange},
	} {
		buf := make([]byte, 3*PageSize)
		for i := range buf {
			buf[i] = 0xAA
		}
		if n, err := m.ReadRange(tc.r, buf); !errors.Is(err, tc.want) || n != 0 || buf[0] != 0xAA {
			t.Errorf("ReadRange(%+v) = %d, %v; want %v", tc.r, n, err, tc.want)
		}
		if n, err := m.WriteRange(tc.r, buf); !errors.Is(err, tc.want) || n != 0 {
			t.Errorf("WriteRange(%+v) = %d, %v; want %v", tc.r, n, err, tc.want)
		}
		if err := m.Segments(tc.r, func([]byte) error { t.Error("fn called"); return nil }); !errors.Is(err, tc.want) {
			t.Errorf("Segments(%+v) = %v", tc.r, err)
		}
		if _, err := m.RangeView([]gpa.Range{{ByteCount: 1, PFNs: []uint64{0}}, tc.r}, ReadOnly); !errors.Is(err, tc.want) {
			t.Errorf("RangeView(%+v) = %v", tc.r, err)
		}
		if errors.Is(tc.want, ErrMalformedRange) {
			if _, err := m.ReadRange(tc.r, buf); !errors.Is(err, gpa.ErrMalformed) {
				t.Errorf("%v does not match gpa.ErrMalformed", err)
			}
		}
	}
}

func TestSegmentsStopsAtError(t *testing.T) {
	_, m := pair(t, 4)
	stop := errors.New("stop")
	calls := 0
	err := m.Segments(gpa.Range{ByteCount: 3 * PageSize, PFNs: []uint64{0, 1, 2}}, func([]byte) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestRangeView(t *testing.T) {
	g, h := pair(t, 8)
	fill(g)
	ranges := []gpa.Range{
		{ByteCount: 100, ByteOffset: 4000, PFNs: []uint64{1, 6}},
		{ByteCount: PageSize, ByteOffset: 0, PFNs: []uint64{3}},
		{ByteCount: 5, ByteOffset: 7, PFNs: []uint64{0}},
	}
	var want []byte
	for _, r := range ranges {
		want = append(want, expect(g, r)...)
	}
	v, err := h.RangeView(ranges, ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != int64(len(want)) {
		t.Fatalf("Len %d, want %d", v.Len(), len(want))
	}
	// Every window of a few sizes at every offset reads the right bytes.
	for _, size := range []int{1, 3, 99, 100, 101, PageSize + 7} {
		for off := 0; off < len(want); off += 37 {
			buf := make([]byte, size)
			n, err := v.ReadAt(buf, int64(off))
			wantN := min(size, len(want)-off)
			if n != wantN || !bytes.Equal(buf[:n], want[off:off+n]) || (n < size) != (err == io.EOF) {
				t.Fatalf("ReadAt(%d, %d) = %d, %v", size, off, n, err)
			}
		}
	}
	if _, err := v.ReadAt(make([]byte, 1), v.Len()); err != io.EOF {
		t.Fatalf("ReadAt at the end: %v", err)
	}
	if _, err := v.ReadAt(make([]byte, 1), -1); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("ReadAt(-1): %v", err)
	}

	// WriteAt across a range boundary lands in both ranges.
	msg := []byte("across the boundary")
	if n, err := v.WriteAt(msg, 95); err != nil || n != len(msg) {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	got := make([]byte, len(msg))
	v.ReadAt(got, 95)
	if !bytes.Equal(got, msg) {
		t.Fatalf("read back %q", got)
	}
	if _, err := v.WriteAt(msg, v.Len()-3); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("WriteAt past the end: %v", err)
	}

	var all []byte
	if err := v.WriteSegments(func(seg []byte) error { all = append(all, seg...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Fatalf("segments cover %d bytes, want %d", len(all), len(want))
	}

	ro, err := h.RangeView(ranges, ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.WriteAt([]byte{1}, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only WriteAt: %v", err)
	}
	if err := ro.WriteSegments(func([]byte) error { t.Error("fn called"); return nil }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only WriteSegments: %v", err)
	}
	if err := ro.ReadSegments(func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := ro.ReadAt(got, 95); err != nil || n != len(got) {
		t.Fatalf("read-only ReadAt: %d, %v", n, err)
	}
}

func TestRangeAccessAllocatesNothing(t *testing.T) {
	_, m := pair(t, 4)
	r := gpa.Range{ByteCount: 3 * PageSize, ByteOffset: 17, PFNs: []uint64{3, 1, 2, 0}}
	buf := make([]byte, r.ByteCount)
	v, err := m.RangeView([]gpa.Range{r, r}, ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	count := func(seg []byte) error { total += len(seg); return nil }
	if a := testing.AllocsPerRun(100, func() {
		m.ReadRange(r, buf)
		m.WriteRange(r, buf)
		m.Segments(r, count)
		v.ReadAt(buf, 100)
		v.WriteAt(buf, 100)
	}); a != 0 {
		t.Fatalf("%v allocations per run", a)
	}
}
