package channel

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

var benchSizes = []int{64, 16 << 10}

// BenchmarkRoundTrip measures a request and its completion: the client's
// SendSynchronousRequest, the server's ProcessPacket completing with the
// same payload.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := newRig(b)
			s := r.newServer(b, echo, StateCallbacks{})
			must(b, s.SetMaxPacketSize(size))
			c := r.newClient(b, ignore, StateCallbacks{})
			must(b, c.SetRingPages(40, 40))
			must(b, s.Enable())
			must(b, s.Start())
			must(b, c.Enable())
			waitState(b, c, StateActive)
			req, resp := make([]byte, size), make([]byte, size)
			// Warm the pools.
			for range 10 {
				_, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout)
				must(b, err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			must(b, c.Disable())
			must(b, s.Disable())
		})
	}
}

// BenchmarkRoundTripPoll is BenchmarkRoundTrip at 64 bytes with both
// ends polling (SetPoll) or not (off), in the same run: the latency a
// poll saves, and the CPU it costs (cpu-ns/op, the whole process's);
// polls-missed/op says how often a poll ran out and the goroutine slept
// after all.
func BenchmarkRoundTripPoll(b *testing.B) {
	const size = 64
	for _, poll := range []time.Duration{0, 50 * time.Microsecond} {
		name := "off"
		if poll > 0 {
			name = poll.String()
		}
		b.Run(name, func(b *testing.B) {
			r := newRig(b)
			s := r.newServer(b, echo, StateCallbacks{})
			c := r.newClient(b, ignore, StateCallbacks{})
			must(b, s.Enable())
			must(b, s.Start())
			must(b, c.Enable())
			waitState(b, c, StateActive)
			must(b, s.SetPoll(poll))
			must(b, c.SetPoll(poll))
			req, resp := make([]byte, size), make([]byte, size)
			for range 10 {
				_, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout)
				must(b, err)
			}
			m0 := c.Stats().PollMisses + s.Stats().PollMisses
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU(b)
			for range b.N {
				if _, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(c.Stats().PollMisses+s.Stats().PollMisses-m0)/float64(b.N), "polls-missed/op")
			must(b, c.Disable())
			must(b, s.Disable())
		})
	}
}

// BenchmarkStream measures one-way packets: the client sends without
// waiting for completions (a full ring queues them), the server completes
// each as it arrives.
func BenchmarkStream(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			r := newRig(b)
			var got atomic.Int64
			s := r.newServer(b, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
				got.Add(1)
				p.Complete(nil)
			}, StateCallbacks{})
			must(b, s.SetMaxPacketSize(size))
			must(b, s.SetMaxPacketCount(256))
			c := r.newClient(b, ignore, StateCallbacks{})
			must(b, c.SetRingPages(40, 40))
			must(b, s.Enable())
			must(b, s.Start())
			must(b, c.Enable())
			waitState(b, c, StateActive)
			const inFlight = 64
			free := make(chan *OutPacket, inFlight)
			for range inFlight {
				p, err := c.AllocatePacket()
				must(b, err)
				p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { free <- p })
				free <- p
			}
			msg := make([]byte, size)
			send := func(n int) {
				for range n {
					if err := (<-free).Send(msg, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
			send(inFlight * 2) // grow the queued copies once
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			send(b.N)
			for got.Load() < int64(b.N+inFlight*2) {
				time.Sleep(50 * time.Microsecond)
			}
			b.StopTimer()
			must(b, c.Disable())
			must(b, s.Disable())
		})
	}
}
