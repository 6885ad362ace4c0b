package protocol

import (
	"errors"
	"reflect"
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

// pages returns a whole-page range of n pages starting at pfn.
func pages(pfn uint64, n int) gpa.Range {
	r := gpa.Range{ByteCount: uint32(n) * gpa.PageSize}
	for i := range n {
		r.PFNs = append(r.PFNs, pfn+uint64(i))
	}
	return r
}

// roundTrip splits ranges, sends every message through Marshal and Decode,
// and reassembles them.
func roundTrip(t *testing.T, ranges []gpa.Range) ([]Message, []gpa.Range) {
	t.Helper()
	msgs, err := NewGpadlMessages(3, 0xE1E10, ranges)
	if err != nil {
		t.Fatal(err)
	}
	var r *GpadlReassembler
	for i, m := range msgs {
		d, err := Decode(Marshal(m))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			r, err = NewGpadlReassembler(d.(*GpadlHeader))
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		done, err := r.AddBody(d.(*GpadlBody))
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == len(msgs)-1) {
			t.Fatalf("done=%v after body %d of %d", done, i, len(msgs)-1)
		}
	}
	if !r.Done() || r.ChannelID() != 3 || r.GpadlID() != 0xE1E10 || r.Remaining() != 0 {
		t.Fatalf("reassembler: done=%v remaining=%d", r.Done(), r.Remaining())
	}
	got, err := r.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	return msgs, got
}

func TestGpadlSplit(t *testing.T) {
	for _, c := range []struct {
		name   string
		ranges []gpa.Range
		sizes  []int // message sizes, header first
	}{
		{"one page", []gpa.Range{pages(0x100, 1)}, []int{36}},
		{"25 pages", []gpa.Range{pages(0x100, 25)}, []int{228}},
		{"26 pages fill the header", []gpa.Range{pages(0x100, 26)}, []int{236}},
		{"27 pages", []gpa.Range{pages(0x100, 27)}, []int{236, 24}},
		{"54 pages: one full body", []gpa.Range{pages(0x100, 54)}, []int{236, 240}},
		{"55 pages", []gpa.Range{pages(0x100, 55)}, []int{236, 240, 24}},
		{"two ranges", []gpa.Range{
			{ByteCount: 0x20, ByteOffset: 0x10, PFNs: []uint64{0x12345}}, pages(0x200, 40)}, []int{236, 144}},
		{"ring of 2×(1+16) pages", []gpa.Range{pages(0x1000, 34)}, []int{236, 80}},
	} {
		t.Run(c.name, func(t *testing.T) {
			msgs, got := roundTrip(t, c.ranges)
			var sizes []int
			for _, m := range msgs {
				sizes = append(sizes, m.Size())
			}
			if !reflect.DeepEqual(sizes, c.sizes) {
				t.Errorf("sizes %v, want %v", sizes, c.sizes)
			}
			h := msgs[0].(*GpadlHeader)
			if int(h.RangeBufferLen) != gpa.EncodedLenOf(c.ranges) || int(h.RangeCount) != len(c.ranges) {
				t.Errorf("header len %d count %d", h.RangeBufferLen, h.RangeCount)
			}
			for _, m := range msgs[1:] {
				if b := m.(*GpadlBody); b.MessageNumber != 0 || b.GpadlID != 0xE1E10 {
					t.Errorf("body %+v", b)
				}
			}
			if !reflect.DeepEqual(got, c.ranges) {
				t.Errorf("ranges %+v, want %+v", got, c.ranges)
			}
		})
	}
}

// One range of 8190 pages is the most a u16 length describes.
func TestGpadlSplitLimits(t *testing.T) {
	msgs, got := roundTrip(t, []gpa.Range{pages(1, 8190)})
	if h := msgs[0].(*GpadlHeader); h.RangeBufferLen != 0xFFF8 {
		t.Fatalf("len %#x", h.RangeBufferLen)
	}
	if len(got[0].PFNs) != 8190 || len(msgs) != 1+(8191-27+27)/28 {
		t.Fatalf("%d messages", len(msgs))
	}
	if _, err := NewGpadlMessages(1, 1, []gpa.Range{pages(1, 8191)}); !errors.Is(err, ErrGpadlTooLarge) {
		t.Fatalf("8191 pages: %v", err)
	}
	if _, err := NewGpadlMessages(1, 1, nil); !errors.Is(err, ErrBadGpadl) {
		t.Fatalf("no ranges: %v", err)
	}
	bad := gpa.Range{ByteCount: 4097, PFNs: []uint64{1}}
	if _, err := NewGpadlMessages(1, 1, []gpa.Range{bad}); !errors.Is(err, gpa.ErrMalformed) {
		t.Fatalf("invalid range: %v", err)
	}
}

func header(length, count uint16, data ...uint64) *GpadlHeader {
	return &GpadlHeader{ChannelID: 1, GpadlID: 7, RangeBufferLen: length, RangeCount: count, Data: data}
}

func body(id uint32, data ...uint64) *GpadlBody { return &GpadlBody{GpadlID: id, Data: data} }

func TestGpadlReassemblerRejectsHeader(t *testing.T) {
	for _, c := range []struct {
		name string
		h    *GpadlHeader
	}{
		{"no ranges", header(16, 0, 0x1000, 1)},
		{"length not 8-aligned", header(20, 1, 0x1000, 1)},
		{"length below 16 per range", header(24, 2, 0x1000, 1, 0x1000)},
		{"more data than length", header(16, 1, 0x1000, 1, 2)},
		{"no data", header(16, 1)},
		{"too many words", header(0xFFF8, 1, make([]uint64, 28)...)},
		{"zero byte count", header(16, 1, 0, 1)},
		{"offset outside the page", header(16, 1, 0x1000|4096<<32, 1)},
		{"length cannot hold the pages", header(16, 1, 0x2000, 1)},
		{"bytes after the last range", header(24, 1, 0x1000, 1, 2)},
		{"count larger than the ranges", header(32, 2, 0x1000, 1, 0x3000, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewGpadlReassembler(c.h)
			if r != nil || !errors.Is(err, ErrBadGpadl) {
				t.Fatalf("got %v, %v", r, err)
			}
		})
	}
}

func TestGpadlReassemblerRejectsBody(t *testing.T) {
	// A 3-page range: header carries the range header and 1 PFN, 2 to come.
	start := func() *GpadlReassembler {
		r, err := NewGpadlReassembler(header(32, 1, 0x3000, 1))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		name   string
		bodies []*GpadlBody
	}{
		{"wrong gpadl id", []*GpadlBody{body(8, 2)}},
		{"overrun", []*GpadlBody{body(7, 2, 3, 4)}},
		{"overrun in the second body", []*GpadlBody{body(7, 2), body(7, 3, 4)}},
		{"body after done", []*GpadlBody{body(7, 2, 3), body(7, 4)}},
		{"empty body", []*GpadlBody{body(7)}},
		{"oversized body", []*GpadlBody{body(7, make([]uint64, 29)...)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := start()
			var err error
			for _, b := range c.bodies {
				if _, err = r.AddBody(b); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrBadGpadl) {
				t.Fatalf("got %v", err)
			}
			// Dead from now on.
			if _, err2 := r.AddBody(body(7, 9)); err2 != err {
				t.Errorf("not sticky: %v", err2)
			}
			if rs, err2 := r.Ranges(); rs != nil || err2 != err {
				t.Errorf("Ranges after error: %v %v", rs, err2)
			}
		})
	}
}

func TestGpadlReassemblerIncomplete(t *testing.T) {
	r, err := NewGpadlReassembler(header(32, 1, 0x3000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if r.Done() || r.Remaining() != 16 {
		t.Fatalf("done=%v remaining=%d", r.Done(), r.Remaining())
	}
	if rs, err := r.Ranges(); rs != nil || !errors.Is(err, ErrBadGpadl) {
		t.Fatalf("incomplete Ranges: %v %v", rs, err)
	}
	if done, err := r.AddBody(body(7, 2)); done || err != nil {
		t.Fatalf("%v %v", done, err)
	}
	if done, err := r.AddBody(body(7, 3)); !done || err != nil {
		t.Fatalf("%v %v", done, err)
	}
	rs, err := r.Ranges()
	if err != nil || len(rs) != 1 || !reflect.DeepEqual(rs[0].PFNs, []uint64{1, 2, 3}) {
		t.Fatalf("%+v %v", rs, err)
	}
}

// A range whose pages end mid-body is still found, and a buffer whose last
// range is cut by the declared length fails at the end.
func TestGpadlReassemblerRangeFailsAtEnd(t *testing.T) {
	r, err := NewGpadlReassembler(header(40, 2, 0x1000, 1, 0x3000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddBody(body(7, 2)); !errors.Is(err, ErrBadGpadl) || !errors.Is(err, gpa.ErrMalformed) {
		t.Fatalf("got %v", err)
	}
}
