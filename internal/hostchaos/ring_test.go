package hostchaos

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/govmbus/govmbus/ring"
)

// ringWithPacket is a formatted ring of 8 data pages holding one in-band
// packet (transaction id 42), as a real host leaves it.
func ringWithPacket(t *testing.T) []byte {
	t.Helper()
	region := make([]byte, ring.ControlSize+8*4096)
	if err := ring.Format(region, true); err != nil {
		t.Fatal(err)
	}
	w, err := ring.NewWriter(region)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInBand(42, 0, []byte("a packet of the real host")); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	return region
}

// readAll reads the ring as the guest would, up to its first error.
func readAll(t *testing.T, region []byte) ([]ring.Packet, error) {
	t.Helper()
	r, err := ring.NewReader(region)
	if err != nil {
		return nil, err
	}
	var ps []ring.Packet
	for {
		var p ring.Packet
		err := r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			return ps, nil
		}
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
}

// TestAbuseRing: each kind of ring abuse writes what it is named after,
// as the guest's ring reader finds it.
func TestAbuseRing(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		check func(t *testing.T, ps []ring.Packet, err error)
	}{
		{kRingIndexPastEnd, corrupt},
		{kRingIndexUnaligned, corrupt},
		{kRingLengthLie, corrupt},
		{kRingUnknownType, corrupt},
		{kRingCompletionUnsent, func(t *testing.T, ps []ring.Packet, err error) {
			if err != nil || len(ps) != 2 || ps[1].Type != ring.TypeCompletion || ps[1].TransactionID == 42 {
				t.Errorf("read %+v, %v: want the host's packet and a completion for another transaction", ps, err)
			}
		}},
		{kRingReplay, func(t *testing.T, ps []ring.Packet, err error) {
			if err != nil || len(ps) != 2 || ps[1].TransactionID != 42 || !bytes.Equal(ps[0].Payload(), ps[1].Payload()) {
				t.Errorf("read %+v, %v: want the host's packet twice", ps, err)
			}
		}},
		{kRingXferBadRange, func(t *testing.T, ps []ring.Packet, err error) {
			if err == nil && (len(ps) != 2 || ps[1].Type != ring.TypeTransferPages) {
				t.Errorf("read %+v: want a transfer-page packet after the host's", ps)
			}
		}},
		{kRingOversized, func(t *testing.T, ps []ring.Packet, err error) {
			if err != nil || len(ps) != 2 || ps[1].Len <= 4096 {
				t.Errorf("read %+v, %v: want a packet of more than a page after the host's", ps, err)
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			for seed := range uint64(20) {
				region := ringWithPacket(t)
				if !abuseRing(tc.kind, region, rand.New(rand.NewPCG(seed, 1))) {
					t.Fatalf("seed %d: nothing written", seed)
				}
				ps, err := readAll(t, region)
				tc.check(t, ps, err)
			}
		})
	}
}

func corrupt(t *testing.T, ps []ring.Packet, err error) {
	t.Helper()
	if !errors.Is(err, ring.ErrCorrupt) {
		t.Errorf("read %d packets, %v: want ErrCorrupt", len(ps), err)
	}
}

// FuzzAbuseRing: whatever the guest left in its ring (indices, footers,
// packets), ring abuse of every kind neither panics nor writes outside
// the ring's data.
func FuzzAbuseRing(f *testing.F) {
	f.Add([]byte{}, uint8(0), uint64(1))
	f.Add([]byte{0xF8, 0x0F, 0, 0, 0x10, 0, 0, 0}, uint8(5), uint64(2))
	f.Add(bytes.Repeat([]byte{0xFF}, 64), uint8(3), uint64(3))
	kinds := []string{kRingIndexPastEnd, kRingIndexUnaligned, kRingLengthLie, kRingUnknownType,
		kRingCompletionUnsent, kRingReplay, kRingXferBadRange, kRingOversized}
	f.Fuzz(func(t *testing.T, ctl []byte, kind uint8, seed uint64) {
		// One data page, with a page of guard bytes on each side.
		mem := make([]byte, 3*4096+ring.ControlSize)
		region := mem[4096 : 4096+ring.ControlSize+4096]
		copy(region, ctl)
		if len(ctl) > 16 {
			copy(region[ring.ControlSize:], ctl[16:])
		}
		for i := range 4096 {
			mem[i], mem[len(mem)-1-i] = 0xA5, 0xA5
		}
		abuseRing(kinds[int(kind)%len(kinds)], region, rand.New(rand.NewPCG(seed, 0)))
		for i := range 4096 {
			if mem[i] != 0xA5 || mem[len(mem)-1-i] != 0xA5 {
				t.Fatalf("wrote outside the ring at guard byte %d", i)
			}
		}
	})
}
