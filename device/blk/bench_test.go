package blk

import (
	"fmt"
	"testing"
)

// BenchmarkReadWrite measures ReadAt and WriteAt of one size through the
// channel API, over transport.Pipe, backed by a temporary file.
func BenchmarkReadWrite(b *testing.B) {
	for _, size := range []int{4096, 1 << 20} {
		for _, write := range []bool{false, true} {
			name := fmt.Sprintf("read/%d", size)
			if write {
				name = fmt.Sprintf("write/%d", size)
			}
			b.Run(name, func(b *testing.B) {
				const disk = 16 << 20
				r := newRig(b, disk, ServerConfig{}, ClientConfig{})
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				off := int64(0)
				for range b.N {
					var err error
					if write {
						_, err = r.d.WriteAt(buf, off)
					} else {
						_, err = r.d.ReadAt(buf, off)
					}
					if err != nil {
						b.Fatal(err)
					}
					if off += int64(size); off+int64(size) > disk {
						off = 0
					}
				}
			})
		}
	}
}
