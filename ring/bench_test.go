package ring

import (
	"errors"
	"fmt"
	"testing"
)

// BenchmarkWriteRead writes a batch of packets and reads it back on one
// goroutine: the per-packet cost of both paths without cache traffic
// between cores. It must not allocate.
func BenchmarkWriteRead(b *testing.B) {
	for _, size := range []int{64, 1024, 16384} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			region := make([]byte, ControlSize+262144)
			w, _ := NewWriter(region)
			r, _ := NewReader(region)
			payload := make([]byte, size)
			dst := make([]byte, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := w.WriteInBand(1, 0, payload); err != nil {
					if !errors.Is(err, ErrFull) {
						b.Fatal(err)
					}
					w.Commit()
					for {
						var p Packet
						err := r.Next(&p)
						if err != nil {
							break
						}
						p.CopyPayload(dst)
					}
					r.Commit()
					if err := w.WriteInBand(1, 0, payload); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkReadGPADirect measures parsing a GPA-direct packet's ranges.
func BenchmarkReadGPADirect(b *testing.B) {
	region := validRing(b)
	r, _ := NewReader(region)
	b.ReportAllocs()
	for b.Loop() {
		for {
			if err := r.Next(new(Packet)); err != nil {
				break
			}
		}
		r.Revert()
	}
}
