package ring

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

// validRing holds one in-band packet at 0 and one GPA-direct packet after
// it, committed, for corruption tests to damage.
func validRing(t testing.TB) []byte {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	if err := w.WriteInBand(1, 0, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	p := &OutPacket{Type: TypeGPADirect, Flags: FlagCompletionRequested, TransactionID: 2,
		Ranges: []gpa.Range{{ByteCount: 100, ByteOffset: 0, PFNs: []uint64{5}}}}
	if err := w.Write(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	return region
}

func TestCorruptRings(t *testing.T) {
	const second = 32 // the GPA-direct packet starts here
	le := binary.LittleEndian
	data := func(region []byte, off int) []byte { return region[ControlSize+off:] }
	cases := []struct {
		name    string
		damage  func(region []byte)
		control bool
		offset  uint32
		rule    string
	}{
		{"write index unaligned", func(b []byte) { le.PutUint32(b[0:], 12) }, true, 0, "multiple of 8"},
		{"write index past size", func(b []byte) { le.PutUint32(b[0:], 4096) }, true, 0, "below the ring size"},
		{"unknown type", func(b []byte) { le.PutUint16(data(b, 0), 8) }, false, 0, "unknown packet type 8"},
		{"data offset below 2", func(b []byte) { le.PutUint16(data(b, 2), 1) }, false, 0, "below 2"},
		{"length below data offset", func(b []byte) { le.PutUint16(data(b, 4), 1) }, false, 0, "below data offset"},
		{"length past published", func(b []byte) { le.PutUint16(data(b, 4), 200) }, false, 0, "published"},
		{"unknown flags", func(b []byte) { le.PutUint16(data(b, 6), 2) }, false, 0, "unknown flags"},
		{"gpa count zero", func(b []byte) { le.PutUint32(data(b, second+20), 0) }, false, second, "range count 0"},
		{"gpa count huge", func(b []byte) { le.PutUint32(data(b, second+20), 1<<30) }, false, second, "does not fit"},
		{"gpa offset past page", func(b []byte) { le.PutUint32(data(b, second+28), 4096) }, false, second, "first page"},
		{"gpa range spans more pages than given", func(b []byte) { le.PutUint32(data(b, second+24), 5000) }, false, second, "page numbers follow"},
		{"gpa header missing", func(b []byte) { le.PutUint16(data(b, second+2), 2) }, false, second, "no room for its type header"},
		{"turned into transfer pages with count 0", func(b []byte) {
			le.PutUint16(data(b, second), uint16(TypeTransferPages))
			le.PutUint32(data(b, second+20), 0)
		}, false, second, "range count 0"},
		{"transfer count too big", func(b []byte) {
			le.PutUint16(data(b, second), uint16(TypeTransferPages))
			le.PutUint32(data(b, second+20), 3)
		}, false, second, "does not fit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			region := validRing(t)
			tc.damage(region)
			r, err := NewReader(region)
			if err == nil {
				for err == nil {
					err = r.Next(new(Packet))
				}
			}
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a CorruptError", err)
			}
			if ce.Control != tc.control || ce.Offset != tc.offset || !strings.Contains(ce.Rule, tc.rule) {
				t.Fatalf("got %+v, want control=%v offset=%#x rule containing %q", ce, tc.control, tc.offset, tc.rule)
			}
			if r != nil {
				// Sticky: the reader stays failed.
				if err2 := r.Next(new(Packet)); !errors.Is(err2, ErrCorrupt) {
					t.Fatalf("second Next after corruption: %v", err2)
				}
			}
		})
	}
}

func TestWriteIndexMovedBack(t *testing.T) {
	region := validRing(t)
	r := mustReader(t, region)
	if err := r.Next(new(Packet)); err != nil {
		t.Fatal(err)
	}
	if err := r.Next(new(Packet)); err != nil {
		t.Fatal(err)
	}
	// The writer takes back the second packet after it was read.
	binary.LittleEndian.PutUint32(region[0:], 32)
	if err := r.Next(new(Packet)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestReadIndexInsideBatch(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	w.WriteInBand(1, 0, make([]byte, 2000))
	// The reader claims to have read the unpublished packet.
	binary.LittleEndian.PutUint32(region[4:], 1024)
	// Fits by the cached read index: nothing is loaded yet.
	if err := w.WriteInBand(2, 0, make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	// Does not fit: the writer loads the read index and sees the lie.
	if err := w.WriteInBand(3, 0, make([]byte, 2000)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	if err := w.WriteInBand(4, 0, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("writer not sticky: %v", err)
	}
}

// FuzzReader feeds arbitrary ring bytes and indices to a Reader. Whatever
// the bytes, it must not panic, must report only ErrEmpty or a
// CorruptError, and must never hand out more bytes than were published.
func FuzzReader(f *testing.F) {
	seed := validRing(f)
	f.Add(uint32(64+32), uint32(0), seed[ControlSize:ControlSize+128])
	f.Add(uint32(104), uint32(0), []byte{})
	f.Add(uint32(16), uint32(4088), []byte{6, 0, 2, 0, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in, out uint32, data []byte) {
		region := make([]byte, ControlSize+4096)
		copy(region[ControlSize:], data)
		binary.LittleEndian.PutUint32(region[0:], in)
		binary.LittleEndian.PutUint32(region[4:], out)
		region[FeatureBitsOffset] = 1
		r, err := NewReader(region)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("NewReader: %v", err)
			}
			return
		}
		published := r.used(in, out)
		var consumed uint32
		for i := 0; ; i++ {
			if i > 4096/24+1 {
				t.Fatal("more packets than can fit")
			}
			var p Packet
			err := r.Next(&p)
			if errors.Is(err, ErrEmpty) {
				break
			}
			if err != nil {
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.Rule == "" {
					t.Fatalf("error %v is not a CorruptError", err)
				}
				break
			}
			consumed += p.Len
			if consumed > published || uint32(p.PayloadLen())+descriptorSize+FooterSize > p.Len {
				t.Fatalf("packet %+v overruns: consumed %d of %d", p, consumed, published)
			}
			_ = p.Payload()
			for _, rg := range p.Ranges {
				if err := rg.Validate(); err != nil {
					t.Fatalf("invalid range passed: %v", err)
				}
			}
		}
		r.Commit()
	})
}
