package guestmem

import (
	"bytes"
	"errors"
	"runtime/debug"
	"testing"
)

func TestMapPagesContiguous(t *testing.T) {
	checkNoFDLeak(t)
	g, h := pair(t, 8)
	fill(g)
	pfns := []uint64{5, 6, 7, 0, 2, 2}
	mp, err := h.MapPages(pfns, ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	b := mp.Bytes()
	if len(b) != len(pfns)*PageSize {
		t.Fatalf("%d bytes", len(b))
	}
	for i, pfn := range pfns {
		if !bytes.Equal(b[i*PageSize:(i+1)*PageSize], g.Bytes()[pfn*PageSize:(pfn+1)*PageSize]) {
			t.Fatalf("page %d of the mapping is not PFN %d", i, pfn)
		}
	}
	// Writes go both ways, including through the page mapped twice.
	copy(b[4*PageSize:], "mapped")
	if !bytes.HasPrefix(b[5*PageSize:], []byte("mapped")) || !bytes.HasPrefix(g.Bytes()[2*PageSize:], []byte("mapped")) {
		t.Fatal("write through the mapping not seen")
	}
	copy(g.Bytes()[7*PageSize:], "guest")
	if !bytes.HasPrefix(b[2*PageSize:], []byte("guest")) {
		t.Fatal("guest write not seen through the mapping")
	}
	// The mapping outlives the Memory it came from.
	h.Close()
	if !bytes.HasPrefix(b[2*PageSize:], []byte("guest")) {
		t.Fatal("mapping lost after closing the memory")
	}
	if err := mp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mp.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMapPagesRejects(t *testing.T) {
	_, h := pair(t, 2)
	if _, err := h.MapPages([]uint64{0, 2}, ReadWrite); !errors.Is(err, ErrOutOfBounds) {
		t.Errorf("PFN past the end: %v", err)
	}
	if _, err := h.MapPages(nil, ReadWrite); !errors.Is(err, ErrMalformedRange) {
		t.Errorf("no pages: %v", err)
	}
	if _, err := h.MapPages(make([]uint64, 17), ReadWrite); !errors.Is(err, ErrBadSize) {
		t.Errorf("too many pages: %v", err)
	}
}

func TestMapPagesReadOnlyFaults(t *testing.T) {
	g, h := pair(t, 2)
	copy(g.Bytes()[PageSize:], "ro")
	mp, err := h.MapPages([]uint64{1}, ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	if string(mp.Bytes()[:2]) != "ro" {
		t.Fatal("read-only mapping reads wrong bytes")
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (f bool) {
		defer func() { f = recover() != nil }()
		mp.Bytes()[0] = 'x'
		return false
	}()
	if !faulted || g.Bytes()[PageSize] != 'r' {
		t.Fatal("wrote through a read-only mapping")
	}
}

// TestMapPagesOneRun maps one run of consecutive PFNs, which takes a
// single mmap, and several runs, which reserve the region first.
func TestMapPagesOneRun(t *testing.T) {
	checkNoFDLeak(t)
	g, h := pair(t, 8)
	fill(g)
	for _, pfns := range [][]uint64{{3, 4, 5, 6}, {7}, {0, 1, 2, 3, 4, 5, 6, 7}, {1, 2, 5, 6}} {
		mp, err := h.MapPages(pfns, ReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		b := mp.Bytes()
		for i, pfn := range pfns {
			if !bytes.Equal(b[i*PageSize:(i+1)*PageSize], g.Bytes()[pfn*PageSize:(pfn+1)*PageSize]) {
				t.Fatalf("%v: page %d of the mapping is not PFN %d", pfns, i, pfn)
			}
		}
		if err := mp.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMapPagesSplit maps pages as two Mappings, each closed on its own.
func TestMapPagesSplit(t *testing.T) {
	checkNoFDLeak(t)
	g, h := pair(t, 8)
	fill(g)
	for _, tc := range []struct {
		pfns []uint64
		at   int
	}{{[]uint64{2, 3, 4, 5, 6}, 2}, {[]uint64{0, 1}, 1}, {[]uint64{6, 1, 2, 7}, 3}} {
		a, b, err := h.MapPagesSplit(tc.pfns, tc.at, ReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Bytes()) != tc.at*PageSize || len(b.Bytes()) != (len(tc.pfns)-tc.at)*PageSize {
			t.Fatalf("%v at %d: %d and %d bytes", tc.pfns, tc.at, len(a.Bytes()), len(b.Bytes()))
		}
		check := func(mp *Mapping, pfns []uint64) {
			for i, pfn := range pfns {
				if !bytes.Equal(mp.Bytes()[i*PageSize:(i+1)*PageSize], g.Bytes()[pfn*PageSize:(pfn+1)*PageSize]) {
					t.Fatalf("%v at %d: page %d is not PFN %d", tc.pfns, tc.at, i, pfn)
				}
			}
		}
		check(a, tc.pfns[:tc.at])
		check(b, tc.pfns[tc.at:])
		// Either half outlives the other.
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		check(b, tc.pfns[tc.at:])
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := h.MapPagesSplit([]uint64{1, 99}, 1, ReadWrite); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("out of bounds: %v", err)
	}
}
