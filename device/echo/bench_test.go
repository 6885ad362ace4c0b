package echo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/testbus"
)

// BenchmarkStream measures checked streaming through the echo VSP and
// back, in one process over transport.Pipe: b.N packets per run.
func BenchmarkStream(b *testing.B) {
	for _, size := range []int{64, 16384} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := newRig(b, ServerConfig{}, ClientConfig{})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := testbus.CPUTime(b)
			res, err := r.c.Stream(context.Background(), StreamConfig{Payload: size, Count: uint64(b.N)})
			b.StopTimer()
			// CPU time of both ends per packet: on a shared machine it
			// varies far less than the wall time per packet.
			b.ReportMetric(float64(testbus.CPUTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			if err != nil || res.Lost+res.Corrupted+res.Duplicated != 0 {
				b.Fatalf("%v %+v", err, res)
			}
		})
	}
}

// BenchmarkStreamRxBuffer compares, at 1 KiB, the in-band stream with the
// same stream answered through a receive buffer (transfer pages): run
// with -count and compare the medians of the two sub-benchmarks.
func BenchmarkStreamRxBuffer(b *testing.B) {
	for _, mode := range []string{"inband", "transfer"} {
		b.Run(mode, func(b *testing.B) {
			const size = 1024
			r := newRig(b, ServerConfig{}, ClientConfig{})
			if mode == "transfer" {
				if err := r.c.UseRxBuffer(testbus.Context(b), 4<<20); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := testbus.CPUTime(b)
			res, err := r.c.Stream(context.Background(), StreamConfig{Payload: size, Count: uint64(b.N)})
			b.StopTimer()
			b.ReportMetric(float64(testbus.CPUTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			st := r.c.Channel().Stats()
			b.ReportMetric(float64(st.SignalsSent)/float64(b.N), "guest-signals/op")
			ss := r.srv.Channel().Stats()
			b.ReportMetric(float64(ss.EmptyWakeups+st.EmptyWakeups)/float64(b.N), "empty-wakeups/op")
			// Ring packets per answered packet, both ways: 2 in band, 3
			// through the buffer (the guest's completion returns the
			// range, one per transfer-page packet, as netvsc's).
			b.ReportMetric(float64(ss.PacketsIn+ss.PacketsOut)/float64(b.N), "ring-packets/op")
			if err != nil || res.Lost+res.Corrupted+res.Duplicated != 0 {
				b.Fatalf("%v %+v", err, res)
			}
			if n := r.srv.TransferFallbacks(); n != 0 {
				b.Fatalf("%d answers in band", n)
			}
		})
	}
}

// BenchmarkPing measures one round trip (request and completion).
func BenchmarkPing(b *testing.B) {
	r := newRig(b, ServerConfig{}, ClientConfig{})
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	res, err := r.c.Ping(context.Background(), b.N, 64, 5*time.Second)
	b.StopTimer()
	if err != nil || res.Lost+res.Corrupted != 0 {
		b.Fatalf("%v %+v", err, res)
	}
}

// BenchmarkCheck measures the per-packet work of a stream outside the
// channel: the sender's Packer and the receiver's Checker.
func BenchmarkCheck(b *testing.B) {
	for _, size := range []int{64, 16384} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			k := NewPacker(size)
			c := NewChecker(uint64(b.N), size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := range uint64(b.N) {
				if c.Check(k.Packet(i)) != VerdictOK {
					b.Fatalf("packet %d: not OK", i)
				}
			}
		})
	}
}
