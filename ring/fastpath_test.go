package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
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

// readAll reads every packet of the ring in region with next, as strings
// that say all a Packet holds, up to and including the error that ends
// the reading.
func readAll(region []byte, next func(*Reader, *Packet) error) []string {
	r, err := NewReader(region)
	if err != nil {
		return []string{"open: " + err.Error()}
	}
	var out []string
	var p Packet
	for i := 0; i < 4096/24+2; i++ {
		if err := next(r, &p); err != nil {
			return append(out, "error: "+err.Error())
		}
		a, b := p.Segments()
		q := p
		q.a, q.b, q.rd, q.gen = nil, nil, nil, 0
		out = append(out, fmt.Sprintf("%+v a=%x b=%x", q, a, b))
	}
	return out
}

// FuzzNextPlain reads arbitrary rings twice, through Next (whose
// header-less packets take nextPlain) and through the general parser
// alone, and requires the same packets, payloads and errors: the fast
// path accepts nothing the parser refuses and reads nothing differently.
func FuzzNextPlain(f *testing.F) {
	seed := validRing(f)
	f.Add(uint32(64+32), uint32(0), seed[ControlSize:ControlSize+128])
	for _, d := range [][]byte{
		{6, 0, 2, 0, 4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0, 0, 0, 0, 0, 0, 0, 0},
		{11, 0, 2, 0, 3, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{6, 0, 2, 0, 3, 0, 2, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // unknown flag
		{6, 0, 1, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // offset below 2
		{6, 0, 3, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // length below offset
		{6, 0, 2, 0, 9, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // longer than published
		{6, 0, 4, 0, 5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 'h', 'h', 'h', 'h', 'h', 'h', 'h', 'h', 'p', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		f.Add(uint32(len(d)), uint32(0), d)
	}
	// A packet whose payload runs over the end of the data area.
	f.Add(uint32(24), uint32(4080), []byte{'w', 'r', 'a', 'p', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in, out uint32, data []byte) {
		region := make([]byte, ControlSize+4096)
		copy(region[ControlSize:], data)
		if out == 4080 && len(data) >= 16 {
			// Put the seed's descriptor just before the end.
			copy(region[ControlSize+4080:], []byte{6, 0, 2, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
		}
		binary.LittleEndian.PutUint32(region[0:], in)
		binary.LittleEndian.PutUint32(region[4:], out)
		region[FeatureBitsOffset] = 1
		fast := readAll(region, (*Reader).Next)
		slow := readAll(region, (*Reader).next)
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("Next read\n%q\nthe parser alone\n%q", fast, slow)
		}
	})
}
