package ringtext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

// FuzzParseGPARange: a spec is either refused with no range, or gives a
// valid range that its own spec, written back, gives again.
func FuzzParseGPARange(f *testing.F) {
	for _, s := range []string{"0x12345:16:32", "74566:0:8192", "1,2,3:100:8000", "1:4096:1", "1:0", "::", "x:0:1",
		"18446744073709551615:0:8192", "1:0:4294967295", "1:4095:4294967295", ",:0:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseGPARange(s)
		if err != nil {
			if r.ByteCount != 0 || r.ByteOffset != 0 || r.PFNs != nil {
				t.Fatalf("%q: error %v and a range %+v", s, err, r)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("%q: invalid range %+v: %v", s, r, err)
		}
		if len(r.PFNs) > maxSpanPages && len(r.PFNs) > strings.Count(s, ",")+1 {
			t.Fatalf("%q: %d PFNs", s, len(r.PFNs))
		}
		pfns := make([]string, len(r.PFNs))
		for i, p := range r.PFNs {
			pfns[i] = fmt.Sprint(p)
		}
		again, err := ParseGPARange(fmt.Sprintf("%s:%d:%d", strings.Join(pfns, ","), r.ByteOffset, r.ByteCount))
		if err != nil || !equalRanges(r, again) {
			t.Fatalf("%q: %+v, written back and parsed %+v, %v", s, r, again, err)
		}
	})
}

func equalRanges(a, b gpa.Range) bool {
	return a.ByteCount == b.ByteCount && a.ByteOffset == b.ByteOffset && fmt.Sprint(a.PFNs) == fmt.Sprint(b.PFNs)
}

// FuzzParseTransferRange: a spec is either refused with no range, or gives
// a range that its own spec, written back, gives again.
func FuzzParseTransferRange(f *testing.F) {
	for _, s := range []string{"0:100", "0x1000:7", "1", "1:-1", "0x100000000:1", ":", "4294967295:4294967295"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseTransferRange(s)
		if err != nil {
			if tr != (ring.TransferRange{}) {
				t.Fatalf("%q: error %v and a range %+v", s, err, tr)
			}
			return
		}
		again, err := ParseTransferRange(fmt.Sprintf("%d:%d", tr.Offset, tr.Count))
		if err != nil || again != tr {
			t.Fatalf("%q: %+v, written back and parsed %+v, %v", s, tr, again, err)
		}
	})
}

// FuzzNewDump: any bytes as a ring of one data page dump without a panic,
// without a write to the ring (the CLI maps it read-only), with an error
// exactly when the dump names one, and print in both forms.
func FuzzNewDump(f *testing.F) {
	f.Add(make([]byte, ring.ControlSize+gpa.PageSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		region := make([]byte, ring.ControlSize+gpa.PageSize)
		copy(region, data)
		ctl, err := ring.Inspect(region)
		if err != nil {
			return
		}
		before := bytes.Clone(region)
		d, err := NewDump(ctl, region)
		if !bytes.Equal(before, region) {
			t.Fatal("the dump wrote to the ring")
		}
		if (err != nil) != (d.Error != "") || d.Packets == nil {
			t.Fatalf("error %v, dump error %q, packets %v", err, d.Error, d.Packets)
		}
		if len(d.Packets) > gpa.PageSize/16 {
			t.Fatalf("%d packets in a page", len(d.Packets))
		}
		if err := d.WriteText(io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	})
}
