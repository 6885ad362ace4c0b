package channel

import (
	"bytes"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// BenchmarkSaveContinue10kInFlight saves a paused server channel holding
// 10,000 transactions in the ring awaiting the guest's completions, with a
// save-packet callback: SaveBegin (where the state is encoded), then
// SaveContinue in 64 KiB buffers, then SaveEnd. Target: 5 ms.
func BenchmarkSaveContinue10kInFlight(b *testing.B) {
	const n = 10000
	s := newSvcTB(b)
	v := newVSP()
	srv := configure(b, s.Guest, v, echo)
	must(b, srv.Enable())
	must(b, srv.Start())
	var mu sync.Mutex
	var held []*Packet
	cl := NewClient()
	must(b, cl.SetClient(s.Client))
	must(b, cl.SetInterface(testType, testInst))
	must(b, cl.SetMaxPacketCount(n+64))
	must(b, cl.SetProcessPacketCallbacks(func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		mu.Lock()
		held = append(held, p)
		mu.Unlock()
	}, nil))
	b.Cleanup(func() { cl.Cleanup() })
	b.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range held {
			p.Complete(nil)
		}
	})
	must(b, cl.Enable())
	waitState(b, srv, StateActive)
	for seq := uint64(0); seq < n; seq++ {
		p, err := srv.AllocatePacket()
		must(b, err)
		p.Context = seq
		p.SetCompletion(v.done)
		must(b, p.Send(make([]byte, 8), SendWaitForCompletion))
	}
	eventually(b, "all in flight", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == n })
	must(b, srv.Pause())
	buf := make([]byte, 64<<10)
	total := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		must(b, srv.SaveBegin())
		total = 0
		for {
			f, _, err := srv.SaveContinue(buf)
			total += f
			if err == nil {
				break
			}
		}
		srv.SaveEnd()
	}
	b.StopTimer()
	b.SetBytes(int64(total))
	must(b, srv.Start())
}

// BenchmarkServiceHost64 services a host with 64 open server channels
// while their guests send echo requests without pause: pause every
// channel, save the bus and the channels, close the host, restore a new
// one and re-attach and start every channel. It reports the time of one
// servicing as p50 and p99.
func BenchmarkServiceHost64(b *testing.B) {
	const chans = 64
	s := newSvcTB(b)
	inst := func(i int) protocol.GUID { g := testInst; g[15] = byte(i); return g }
	servers := make([]*Channel, chans)
	newServer := func(g *host.Guest, i int) *Channel {
		srv := NewServer()
		must(b, srv.SetGuest(g))
		must(b, srv.SetInterface(testType, inst(i)))
		must(b, srv.SetProcessPacketCallbacks(echo, nil))
		return srv
	}
	for i := range servers {
		servers[i] = newServer(s.Guest, i)
		must(b, servers[i].Enable())
		must(b, servers[i].Start())
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var echoes atomic.Int64
	for i := range chans {
		cl := NewClient()
		must(b, cl.SetClient(s.Client))
		must(b, cl.SetInterface(testType, inst(i)))
		must(b, cl.SetProcessPacketCallbacks(echo, nil))
		must(b, cl.Enable())
		waitState(b, cl, StateActive)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := bytes.Repeat([]byte{byte(i)}, 64)
			resp := make([]byte, 64)
			for !stop.Load() {
				if _, err := cl.SendSynchronousRequest(req, nil, 0, resp, 2*time.Second); err == nil {
					echoes.Add(1)
				}
			}
		}()
		b.Cleanup(func() { cl.Cleanup() })
	}
	b.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
		for _, srv := range servers {
			srv.Cleanup()
		}
	})
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		for _, srv := range servers {
			must(b, srv.Pause())
		}
		saved := s.Save(b)
		states := make([][]byte, chans)
		for i, srv := range servers {
			var buf bytes.Buffer
			must(b, srv.Save(&buf))
			states[i] = buf.Bytes()
		}
		s.Stop()
		for _, srv := range servers {
			must(b, srv.Cleanup())
		}
		s.Restore(b, host.Config{}, saved)
		for i := range servers {
			servers[i] = newServer(s.Guest, i)
			must(b, servers[i].Restore(states[i]))
			must(b, servers[i].Enable())
			must(b, servers[i].Start())
		}
		s.Host.Resume()
		times = append(times, time.Since(start))
		before := echoes.Load()
		eventually(b, "traffic after the restore", func() bool { return echoes.Load() > before+chans })
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[(len(times)*99)/100].Microseconds())/1000, "p99-ms")
}
