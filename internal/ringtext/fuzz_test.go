package ringtext

import (
	"bytes"
	"encoding/hex"
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
// exactly when the dump names one, and print in both forms, with their
// in-band payloads decoded as IC messages too.
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
		d.DecodeIC()
		for _, p := range d.Packets {
			if inband := ring.PacketType(p.Type) == ring.TypeInBand; inband != ((p.IC == nil) != (p.ICError == "")) {
				t.Fatalf("packet of type %d: ic %+v, ic error %q", p.Type, p.IC, p.ICError)
			}
		}
		if err := d.WriteText(io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzDecodeIC: any bytes are either refused with a reason or decoded
// into a message that prints in both forms.
func FuzzDecodeIC(f *testing.F) {
	for _, s := range []string{
		"010000002c000000000000000000000000001800000000000003000002000200000000000100000003000000030000000400000000000000",                           // negotiate request
		"010000002c000000000000000000000000001000000000000005000001000100000000000300000003000000030000000400000000000000",                           // its answer
		"010000003c00000003000000010003000000280000000000000300000500000000000000000000000000000000000000000000000000000000000000000000000000000000", // heartbeat
		"0000000004000000000000000000000000000200",
		"68656c6c6f",
	} {
		b, err := hex.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeIC(b)
		if (d == nil) == (err == nil) {
			t.Fatalf("message %+v and error %v", d, err)
		}
		if err != nil {
			return
		}
		if err := d.WriteText(io.Discard, "  "); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	})
}
