package gpa

import (
	"bytes"
	"errors"
	"testing"
)

func TestPagesSpanned(t *testing.T) {
	for _, tc := range []struct {
		off, count uint32
		want       uint64
	}{
		{0, 1, 1}, {0, 4096, 1}, {0, 4097, 2}, {4095, 1, 1}, {4095, 2, 2},
		{16, 32, 1}, {0xFFF, 0xFFFFFFFF, 0x100001},
	} {
		if got := PagesSpanned(tc.off, tc.count); got != tc.want {
			t.Errorf("PagesSpanned(%d, %d) = %d, want %d", tc.off, tc.count, got, tc.want)
		}
	}
}

// The two ranges of WIRE.md §8's GPA-direct known answer.
var knownRanges = []Range{
	{ByteCount: 0x20, ByteOffset: 0x10, PFNs: []uint64{0x12345}},
	{ByteCount: 4096, ByteOffset: 0, PFNs: []uint64{0x12346}},
}

var knownBytes = []byte{
	0x20, 0, 0, 0, 0x10, 0, 0, 0, 0x45, 0x23, 0x01, 0, 0, 0, 0, 0,
	0x00, 0x10, 0, 0, 0, 0, 0, 0, 0x46, 0x23, 0x01, 0, 0, 0, 0, 0,
}

func TestAppendParseKnownAnswer(t *testing.T) {
	var b []byte
	for _, r := range knownRanges {
		var err error
		if b, err = AppendRange(b, r); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(b, knownBytes) {
		t.Fatalf("encoded % x\nwant    % x", b, knownBytes)
	}
	if EncodedLenOf(knownRanges) != len(knownBytes) {
		t.Fatalf("EncodedLenOf = %d, want %d", EncodedLenOf(knownRanges), len(knownBytes))
	}
	rs, pfns, n, err := ParseRanges(append(b, 0xAA), 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(knownBytes) || len(rs) != 2 || len(pfns) != 2 {
		t.Fatalf("n=%d ranges=%d pfns=%d", n, len(rs), len(pfns))
	}
	for i, r := range rs {
		w := knownRanges[i]
		if r.ByteCount != w.ByteCount || r.ByteOffset != w.ByteOffset || len(r.PFNs) != 1 || r.PFNs[0] != w.PFNs[0] {
			t.Errorf("range %d = %+v, want %+v", i, r, w)
		}
	}
}

func TestParseRangesRejects(t *testing.T) {
	cases := map[string]struct {
		b     []byte
		count int
	}{
		"zero count":        {knownBytes, 0},
		"count too large":   {knownBytes, 3},
		"zero byte count":   {[]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 1},
		"offset past page":  {[]byte{1, 0, 0, 0, 0, 0x10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 1},
		"missing pfn":       {[]byte{2, 0, 0, 0, 0xFF, 0x0F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 1},
		"huge byte count":   {[]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 1},
		"second truncated":  {knownBytes[:24], 2},
		"header truncated":  {knownBytes[:7], 1},
		"negative count":    {knownBytes, -1},
		"empty with count1": {nil, 1},
	}
	for name, tc := range cases {
		dst := make([]Range, 1, 4)
		pfns := make([]uint64, 2, 8)
		d2, p2, n, err := ParseRanges(tc.b, tc.count, dst, pfns)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
		var re *RangeError
		if !errors.As(err, &re) || re.Rule == "" {
			t.Errorf("%s: no rule in %v", name, err)
		}
		if n != 0 || len(d2) != 1 || len(p2) != 2 {
			t.Errorf("%s: error left results n=%d ranges=%d pfns=%d", name, n, len(d2), len(p2))
		}
	}
}

func TestAppendRangeValidates(t *testing.T) {
	for _, r := range []Range{
		{ByteCount: 0, PFNs: []uint64{1}},
		{ByteCount: 1, ByteOffset: 4096, PFNs: []uint64{1}},
		{ByteCount: 4097, PFNs: []uint64{1}},
		{ByteCount: 1, PFNs: []uint64{1, 2}},
	} {
		if b, err := AppendRange(nil, r); !errors.Is(err, ErrMalformed) || len(b) != 0 {
			t.Errorf("AppendRange(%+v) = %x, %v; want ErrMalformed", r, b, err)
		}
	}
}

func TestParseRangesNoAlloc(t *testing.T) {
	dst := make([]Range, 0, 4)
	pfns := make([]uint64, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if _, _, _, err = ParseRanges(knownBytes, 2, dst[:0], pfns[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseRanges allocated %.0f times with reused buffers", allocs)
	}
}

func FuzzParseRanges(f *testing.F) {
	f.Add(knownBytes, 2)
	f.Add(knownBytes[:16], 1)
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, b []byte, count int) {
		orig := bytes.Clone(b)
		rs, pfns, n, err := ParseRanges(b, count, nil, nil)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseRanges modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) || len(rs) != 0 || len(pfns) != 0 || n != 0 {
				t.Fatalf("error %v with results %d %d %d", err, len(rs), len(pfns), n)
			}
			return
		}
		if len(rs) != count || n > len(b) || n != EncodedLenOf(rs) {
			t.Fatalf("count %d n %d len %d: got %d ranges of %d bytes", count, n, len(b), len(rs), EncodedLenOf(rs))
		}
		// A parsed list re-encodes to exactly the bytes it came from.
		var enc []byte
		for _, r := range rs {
			if enc, err = AppendRange(enc, r); err != nil {
				t.Fatalf("parsed range does not validate: %v", err)
			}
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
