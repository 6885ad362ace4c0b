package protocol

import (
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

func benchDecode(b *testing.B, wire []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if _, err := Decode(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeOfferChannel(b *testing.B) {
	_, wire := goldenOffer()
	benchDecode(b, wire)
}

func BenchmarkDecodeGpadlBodyFull(b *testing.B) {
	benchDecode(b, Marshal(&GpadlBody{GpadlID: 1, Data: make([]uint64, GpadlBodyMaxWords)}))
}

func BenchmarkDecodeVersionResponse(b *testing.B) {
	benchDecode(b, Marshal(&VersionResponse{VersionSupported: true, VersionOrConnectionID: 4}))
}

func BenchmarkDecodeRequestOffers(b *testing.B) {
	benchDecode(b, Marshal(&RequestOffers{}))
}

func benchAppend(b *testing.B, m Message) {
	b.ReportAllocs()
	b.SetBytes(int64(m.Size()))
	buf := make([]byte, 0, MaxMessageSize)
	for b.Loop() {
		buf = m.Append(buf[:0])
	}
}

func BenchmarkAppendOfferChannel(b *testing.B) {
	m, _ := goldenOffer()
	benchAppend(b, m)
}

func BenchmarkAppendGpadlBodyFull(b *testing.B) {
	benchAppend(b, &GpadlBody{GpadlID: 1, Data: make([]uint64, GpadlBodyMaxWords)})
}

func BenchmarkGpadlSplitReassemble(b *testing.B) {
	ranges := []gpa.Range{pages(0x1000, 256)}
	b.ReportAllocs()
	for b.Loop() {
		if _, got := roundTripNoFatal(ranges); got == nil {
			b.Fatal("round trip failed")
		}
	}
}
