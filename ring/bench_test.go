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

// BenchmarkWrite measures the write path alone: whenever the ring is full,
// the read index jumps to the write index as if a reader had consumed
// everything at no cost.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{64, 16384} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			region := make([]byte, ControlSize+262144)
			w, _ := NewWriter(region)
			payload := make([]byte, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := w.WriteInBand(1, 0, payload); err != nil {
					w.Commit()
					w.readIndex.Store(w.writeIndex.Load())
					if err := w.WriteInBand(1, 0, payload); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkRead measures the read path alone, copying each payload out: a
// full ring is read and then reverted, so the same packets are read again.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{64, 16384} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			region := make([]byte, ControlSize+262144)
			w, _ := NewWriter(region)
			payload := make([]byte, size)
			for w.WriteInBand(1, 0, payload) == nil {
			}
			w.Commit()
			r, _ := NewReader(region)
			dst := make([]byte, size)
			var p Packet
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if r.Next(&p) != nil {
					r.Revert()
					if err := r.Next(&p); err != nil {
						b.Fatal(err)
					}
				}
				p.CopyPayload(dst)
			}
		})
	}
}
