package pipe

import (
	"io"
	"testing"

	"github.com/govmbus/govmbus/channel"
)

// BenchmarkByteStream streams byte mode from the guest to the host in
// 64 KiB writes (four 16 KiB packets each), a reader draining the other
// end in 64 KiB reads: the pipe over the channel in one process, rings
// of 64 pages (256 KiB) each way.
func BenchmarkByteStream(b *testing.B) {
	benchByteStream(b, newRig(b, rigConfig{mode: channel.PipeByte, ringPages: 64}))
}

// BenchmarkByteStreamDirect is BenchmarkByteStream with the reader's
// data taken by a direct function (SetDirect) on the receive goroutine,
// as a relay writes it to its socket: the reader only waits for the end.
func BenchmarkByteStreamDirect(b *testing.B) {
	r := newRig(b, rigConfig{mode: channel.PipeByte, ringPages: 64})
	var taken int
	r.server.SetDirect(func(bufs [][]byte) int {
		n := 0
		for _, p := range bufs {
			n += len(p)
		}
		taken += n
		return n
	})
	benchByteStream(b, r)
	if taken == 0 {
		b.Fatal("the direct function took nothing")
	}
}

// benchByteStream writes 64 KiB at a time into r's client until b is
// done, a reader draining its server to the end.
func benchByteStream(b *testing.B, r *rig) {
	buf := make([]byte, 64<<10)
	done := make(chan error, 1)
	go func() {
		rb := make([]byte, 64<<10)
		for {
			_, err := r.server.Read(rb)
			if err == io.EOF {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.client.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
