package ring

import (
	"bytes"
	"errors"
	"testing"
)

// dirtyRegion is a region whose data area holds garbage, as a ring does
// once it has wrapped: a writer that skips a byte of padding shows it.
func dirtyRegion(t testing.TB, dataSize int) []byte {
	t.Helper()
	region := newRegion(t, dataSize)
	for i := range region[ControlSize:] {
		region[ControlSize+i] = 0xA5
	}
	return region
}

// TestWriteOneMatchesWrite writes every payload length from 0 to 80, and
// a few large ones, as one piece (the single-piece path) and as two
// pieces (the general path) over garbage, at every phase of the ring's
// wrap, and requires the same bytes and the same indices.
func TestWriteOneMatchesWrite(t *testing.T) {
	lengths := []int{}
	for n := 0; n <= 80; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 1000, 1023, 4000)
	payload := make([]byte, 4096)
	for i := range payload {
		payload[i] = byte(i*7 + 1)
	}
	one, two := dirtyRegion(t, 8192), dirtyRegion(t, 8192)
	w1, w2 := mustWriter(t, one), mustWriter(t, two)
	r1, r2 := mustReader(t, one), mustReader(t, two)
	for round := 0; round < 3; round++ {
		for i, n := range lengths {
			p := payload[:n]
			txid := uint64(round<<16 | i)
			var e1, e2 error
			if i%2 == 0 {
				e1 = w1.WriteInBand(txid, FlagCompletionRequested, p)
				e2 = w2.WriteInBand(txid, FlagCompletionRequested, p[:n/2], p[n/2:])
			} else {
				e1 = w1.WriteCompletion(txid, p)
				e2 = w2.WriteCompletion(txid, p[:n/2], p[n/2:])
			}
			if e1 != nil || e2 != nil {
				t.Fatalf("round %d, %d bytes: %v, %v", round, n, e1, e2)
			}
			if w1.in != w2.in {
				t.Fatalf("round %d, %d bytes: write position %d, general path %d", round, n, w1.in, w2.in)
			}
			if !bytes.Equal(one, two) {
				t.Fatalf("round %d, %d bytes: the single-piece packet differs from the general path's", round, n)
			}
			w1.Commit()
			w2.Commit()
			// Drain both, so the next packets land on older garbage
			// and, over the rounds, across the end of the ring.
			for _, r := range []*Reader{r1, r2} {
				var pk Packet
				if err := r.Next(&pk); err != nil || pk.PayloadLen() != PayloadLen(n) {
					t.Fatalf("round %d, %d bytes: read back %v, %d bytes", round, n, err, pk.PayloadLen())
				}
				r.Commit()
			}
		}
	}
}

// TestWriteOneFullRing: the single-piece path never writes over space the
// cached read index does not show free, and hands the full ring to the
// general path, which reports ErrFull.
func TestWriteOneFullRing(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	payload := make([]byte, 64)
	n := 0
	for ; ; n++ {
		err := w.WriteInBand(uint64(n), 0, payload)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := PacketsFit(4096, 64); n != want {
		t.Fatalf("%d packets written, %d fit", n, want)
	}
}

