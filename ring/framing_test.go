package ring_test

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

func emptyRing(t *testing.T, dataSize int, pendingSend bool) []byte {
	t.Helper()
	region := make([]byte, ring.ControlSize+dataSize)
	if err := ring.Format(region, pendingSend); err != nil {
		t.Fatal(err)
	}
	return region
}

// TestPacketLenIsWhatTheRingTakes: for each packet type and payload sizes
// around every padding step, PacketLen(p.HeaderLen(), n) is the length the
// reader reports for the packet the writer wrote, PayloadLen(n) its padded
// payload, and the write index moves by exactly PacketLen.
func TestPacketLenIsWhatTheRingTakes(t *testing.T) {
	packets := []ring.OutPacket{
		{Type: ring.TypeInBand},
		{Type: ring.TypeCompletion},
		{Type: ring.TypeGPADirect, Ranges: []gpa.Range{
			{ByteCount: 100, ByteOffset: 10, PFNs: []uint64{7}},
			{ByteCount: 5000, PFNs: []uint64{8, 9}},
		}},
		{Type: ring.TypeTransferPages, TransferPageSet: 1, TransferRanges: []ring.TransferRange{{Count: 1, Offset: 2}, {Count: 3, Offset: 4}, {Count: 5, Offset: 6}}},
	}
	for _, op := range packets {
		for n := 0; n <= 33; n++ {
			region := emptyRing(t, 4096, false)
			w, err := ring.NewWriter(region)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(&op, make([]byte, n)); err != nil {
				t.Fatalf("%v payload %d: %v", op.Type, n, err)
			}
			w.Commit()
			want := ring.PacketLen(op.HeaderLen(), n)
			if got := int(binary.LittleEndian.Uint32(region[ring.WriteIndexOffset:])); got != want {
				t.Errorf("%v payload %d: write index moved %d, PacketLen says %d", op.Type, n, got, want)
			}
			r, err := ring.NewReader(region)
			if err != nil {
				t.Fatal(err)
			}
			var p ring.Packet
			if err := r.Next(&p); err != nil {
				t.Fatalf("%v payload %d: %v", op.Type, n, err)
			}
			if int(p.Len) != want || p.PayloadLen() != ring.PayloadLen(n) {
				t.Errorf("%v payload %d: reader says len %d payload %d; PacketLen %d, PayloadLen %d",
					op.Type, n, p.Len, p.PayloadLen(), want, ring.PayloadLen(n))
			}
		}
	}
}

// TestFramingLengthsNeverWrap: lengths a peer may choose (negative from a
// bad conversion, or near the top of int) give math.MaxInt, which fails
// every bounds check, instead of a small wrapped sum that passes one.
func TestFramingLengthsNeverWrap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"PayloadLen(-1)", ring.PayloadLen(-1), math.MaxInt},
		{"PayloadLen(MaxInt)", ring.PayloadLen(math.MaxInt), math.MaxInt},
		{"PayloadLen(MaxInt-7)", ring.PayloadLen(math.MaxInt - 7), math.MaxInt - 7},
		{"PayloadLen(0)", ring.PayloadLen(0), 0},
		{"PayloadLen(9)", ring.PayloadLen(9), 16},
		{"PacketLen(0, 0)", ring.PacketLen(0, 0), 24},
		{"PacketLen(8, 1)", ring.PacketLen(8, 1), 40},
		{"PacketLen(-8, 0)", ring.PacketLen(-8, 0), math.MaxInt},
		{"PacketLen(0, -1)", ring.PacketLen(0, -1), math.MaxInt},
		{"PacketLen(0, MaxInt)", ring.PacketLen(0, math.MaxInt), math.MaxInt},
		{"PacketLen(MaxInt, MaxInt)", ring.PacketLen(math.MaxInt, math.MaxInt), math.MaxInt},
		{"PacketLen(MaxInt-24, 0)", ring.PacketLen(math.MaxInt-24, 0), math.MaxInt},
		{"PacketsFit(4096, MaxInt)", ring.PacketsFit(4096, math.MaxInt), 0},
		{"PacketsFit(MaxInt, -1)", ring.PacketsFit(math.MaxInt, -1), 0},
		{"PacketsFit(0, 0)", ring.PacketsFit(0, 0), 0},
		{"PacketsFit(-4096, 0)", ring.PacketsFit(-4096, 0), 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// TestPacketsFitFillsTheRing: an empty ring takes exactly PacketsFit
// packets of a payload size; the next one finds it full (or, when none
// fits, the first is too large).
func TestPacketsFitFillsTheRing(t *testing.T) {
	for _, size := range []int{4096, 8192, 65536} {
		for _, n := range []int{0, 1, 8, 64, 100, 1000, 4072, 4073, 8168, 40000, ring.MaxPacketLen - 16, ring.MaxPacketLen} {
			region := emptyRing(t, size, false)
			w, err := ring.NewWriter(region)
			if err != nil {
				t.Fatal(err)
			}
			k := ring.PacketsFit(size, n)
			payload := make([]byte, n)
			for i := range k {
				if err := w.WriteInBand(uint64(i), 0, payload); err != nil {
					t.Fatalf("ring %d payload %d: packet %d of %d: %v", size, n, i+1, k, err)
				}
			}
			err = w.WriteInBand(uint64(k), 0, payload)
			want := ring.ErrFull
			if k == 0 {
				want = ring.ErrTooLarge
			}
			if !errors.Is(err, want) {
				t.Errorf("ring %d payload %d: packet %d after PacketsFit %d: %v, want %v", size, n, k+1, k, err, want)
			}
		}
	}
}

// TestControlOffsets: each exported offset is where the endpoints keep
// that field: what they store is found there, and what is stored there is
// what Inspect reads.
func TestControlOffsets(t *testing.T) {
	region := emptyRing(t, 4096, true)
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(region[off:]) }
	if u32(ring.FeatureBitsOffset)&ring.FeaturePendingSendSize == 0 {
		t.Fatalf("Format with pending send: feature bits %#x", u32(ring.FeatureBitsOffset))
	}
	w, err := ring.NewWriter(region)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewReader(region)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInBand(1, 0, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	if got := u32(ring.WriteIndexOffset); got != 32 {
		t.Errorf("write index field %d, want 32", got)
	}
	var p ring.Packet
	if err := r.Next(&p); err != nil {
		t.Fatal(err)
	}
	r.Commit()
	if got := u32(ring.ReadIndexOffset); got != 32 {
		t.Errorf("read index field %d, want 32", got)
	}
	r.DisableInterrupts()
	if got := u32(ring.InterruptMaskOffset); got == 0 {
		t.Error("interrupt mask field still 0 after DisableInterrupts")
	}
	// Fill the ring, then ask to be woken: the request lands in the
	// pending send size field.
	for w.WriteInBand(2, 0, make([]byte, 64)) == nil {
	}
	if ready, err := w.WaitFor(64, 0); err != nil || ready {
		t.Fatalf("WaitFor on a full ring: ready %v, %v", ready, err)
	}
	if got := u32(ring.PendingSendSizeOffset); got == 0 {
		t.Error("pending send size field still 0 after WaitFor")
	}

	binary.LittleEndian.PutUint32(region[ring.WriteIndexOffset:], 0x100)
	binary.LittleEndian.PutUint32(region[ring.ReadIndexOffset:], 0x200)
	binary.LittleEndian.PutUint32(region[ring.InterruptMaskOffset:], 3)
	binary.LittleEndian.PutUint32(region[ring.PendingSendSizeOffset:], 0x300)
	binary.LittleEndian.PutUint32(region[ring.FeatureBitsOffset:], 5)
	c, err := ring.Inspect(region)
	if err != nil {
		t.Fatal(err)
	}
	want := ring.Control{DataSize: 4096, WriteIndex: 0x100, ReadIndex: 0x200, InterruptMask: 3, PendingSendSize: 0x300, FeatureBits: 5}
	if c != want {
		t.Errorf("Inspect = %+v, want %+v", c, want)
	}
}

// TestPendingSendMet: a writer that waits for space is owed a signal
// exactly when the snapshot shows more free than it asked for, and never
// on a ring without the feature or with indices a peer broke.
func TestPendingSendMet(t *testing.T) {
	region := emptyRing(t, 4096, true)
	w, err := ring.NewWriter(region)
	if err != nil {
		t.Fatal(err)
	}
	inspect := func() ring.Control {
		c, err := ring.Inspect(region)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if inspect().PendingSendMet() {
		t.Fatal("met with no writer waiting")
	}
	for w.WriteInBand(1, 0, make([]byte, 64)) == nil {
	}
	w.Commit()
	if ready, err := w.WaitFor(64, 0); err != nil || ready {
		t.Fatalf("WaitFor on a full ring: ready %v, %v", ready, err)
	}
	if inspect().PendingSendMet() {
		t.Fatal("met while the ring is still full")
	}
	// The reader consumes everything: now the space is there.
	r, err := ring.NewReader(region)
	if err != nil {
		t.Fatal(err)
	}
	var p ring.Packet
	for r.Next(&p) == nil {
	}
	r.Commit()
	c := inspect()
	if !c.PendingSendMet() {
		t.Fatalf("not met after the reader drained the ring: %+v", c)
	}
	for _, tc := range []struct {
		name string
		mod  func(*ring.Control)
	}{
		{"no feature", func(c *ring.Control) { c.FeatureBits = 0 }},
		{"only low bits asked", func(c *ring.Control) { c.PendingSendSize = 7 }},
		{"write index past the end", func(c *ring.Control) { c.WriteIndex = c.DataSize }},
		{"read index past the end", func(c *ring.Control) { c.ReadIndex = math.MaxUint32 }},
		{"zero value", func(c *ring.Control) { *c = ring.Control{} }},
	} {
		bad := c
		tc.mod(&bad)
		if bad.PendingSendMet() {
			t.Errorf("%s: met (%+v)", tc.name, bad)
		}
	}
}
