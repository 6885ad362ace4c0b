package echo

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// busyRig is a host with servers echo servers on its one guest, each
// streamed at without pause by a client of the guest: what a servicing
// host finds.
type busyRig struct {
	h      *host.Host
	wg     sync.WaitGroup
	cl     *guest.Client
	srvs   []*Server
	cancel context.CancelFunc
	stream sync.WaitGroup
}

func benchInstance(i int) protocol.GUID {
	g := InterfaceInstance
	g[15] = byte(i + 1)
	return g
}

func newBusyRig(b *testing.B, servers int) *busyRig {
	b.Helper()
	r := &busyRig{srvs: make([]*Server, servers)}
	ready := make(chan error, 1)
	r.h = host.New(host.Config{OnGuest: func(g *host.Guest) {
		var err error
		for i := range r.srvs {
			if r.srvs[i], err = NewServer(g, ServerConfig{Instance: benchInstance(i)}); err != nil {
				break
			}
		}
		ready <- err
	}})
	hc, gc, err := transport.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.h.ServeConn(hc)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.cl, err = guest.New(ctx, gc, guest.Config{MemorySize: 64 << 20}); err != nil {
		b.Fatal(err)
	}
	if err := <-ready; err != nil {
		b.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	r.cancel = scancel
	var clients []*Client
	b.Cleanup(func() {
		r.cancel()
		r.stream.Wait()
		for _, c := range clients {
			c.Close()
		}
		for _, s := range r.srvs {
			if s != nil {
				s.Close()
			}
		}
		r.cl.Close()
		r.h.Close()
		r.wg.Wait()
	})
	for i := range r.srvs {
		c, err := Open(ctx, r.cl, ClientConfig{Instance: benchInstance(i)})
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		r.stream.Add(1)
		go func() {
			defer r.stream.Done()
			// Streams until cancelled; a servicing looks like a pause.
			c.Stream(sctx, StreamConfig{Payload: 256, Count: 1 << 28, Idle: time.Minute}) //nolint:errcheck // ends with the benchmark
		}()
	}
	time.Sleep(20 * time.Millisecond) // traffic under way
	return r
}

// servicingTimes are the phases of one servicing of a busyRig.
type servicingTimes struct {
	pause, save, restore, start time.Duration
}

// service pauses every server (StopIndications first, as vmbus host
// does), saves the bus and the servers, drops the host and restores a new
// one with every server restored paused, then starts them. timed selects
// the phase whose time the benchmark timer counts (and whose allocations
// it reports).
func (r *busyRig) service(b *testing.B, timed string) servicingTimes {
	var t servicingTimes
	phase := func(name string, d *time.Duration, fn func()) {
		if name == timed {
			b.StartTimer()
		}
		t0 := time.Now()
		fn()
		*d = time.Since(t0)
		if name == timed {
			b.StopTimer()
		}
	}
	phase("pause", &t.pause, func() {
		for _, s := range r.srvs {
			s.StopIndications()
		}
		var wg sync.WaitGroup
		for _, s := range r.srvs {
			wg.Go(func() {
				if err := s.Pause(); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	})
	saved, err := r.h.SaveGuests()
	if err != nil {
		b.Fatal(err)
	}
	ownSaved(b, saved)
	chunks := make([][][]byte, len(r.srvs))
	phase("save", &t.save, func() {
		for i, s := range r.srvs {
			if chunks[i], err = s.Save(); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.h.Close()
	r.wg.Wait()
	for _, s := range r.srvs {
		s.Close()
	}
	h2, guests, err := host.Restore(host.Config{}, saved)
	for i := range saved {
		saved[i].Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	r.h = h2
	phase("restore", &t.restore, func() {
		for i := range r.srvs {
			if r.srvs[i], err = RestorePausedServer(guests[0], ServerConfig{Instance: benchInstance(i)}, chunks[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	phase("start", &t.start, func() {
		for _, s := range r.srvs {
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
		}
		h2.Resume()
	})
	// Traffic again on every channel before the next servicing.
	for _, s := range r.srvs {
		before := s.Channel().Stats().PacketsIn
		deadline := time.Now().Add(10 * time.Second)
		for s.Channel().Stats().PacketsIn < before+64 {
			if time.Now().After(deadline) {
				b.Fatal("no traffic after the restore")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return t
}

// benchServicing services a busy rig of 8 echo servers b.N times, timing
// one phase; it reports that phase's time per servicing (all 8 servers)
// as ns/op and every phase's mean as metrics.
func benchServicing(b *testing.B, timed string) {
	const servers = 8
	r := newBusyRig(b, servers)
	var sum servicingTimes
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		if timed == "pause" {
			// Servicings come seconds apart, not right after the
			// traffic resumed: the servers' workers are settled
			// (channel: a worker reads its goroutine id 100 ms after
			// it starts).
			time.Sleep(150 * time.Millisecond)
		}
		t := r.service(b, timed)
		sum.pause += t.pause
		sum.save += t.save
		sum.restore += t.restore
		sum.start += t.start
	}
	n := float64(b.N) * 1e3
	b.ReportMetric(float64(sum.pause)/n, "pause-µs")
	b.ReportMetric(float64(sum.save)/n, "save-µs")
	b.ReportMetric(float64(sum.restore)/n, "restore-µs")
	b.ReportMetric(float64(sum.start)/n, "start-µs")
}

// BenchmarkRestorePausedServer: RestorePausedServer of 8 echo servers
// saved off paused servers that had traffic (host.Restore not counted).
func BenchmarkRestorePausedServer(b *testing.B) { benchServicing(b, "restore") }

// BenchmarkStartRestored: Start of 8 restored echo servers.
func BenchmarkStartRestored(b *testing.B) { benchServicing(b, "start") }

// BenchmarkSave: Save of 8 paused echo servers.
func BenchmarkSave(b *testing.B) { benchServicing(b, "save") }

// BenchmarkPauseBusy: StopIndications of 8 echo servers streamed at, then
// Pause of each (side by side), until the last Pause returns.
func BenchmarkPauseBusy(b *testing.B) { benchServicing(b, "pause") }

// ownSaved makes the descriptors of SaveGuests' answer the SavedGuests'
// own (host.SavedGuest.Own), so that they outlive the saving host: a
// restore in the same process, as after a failed exec.
func ownSaved(tb testing.TB, saved []host.SavedGuest) {
	tb.Helper()
	for i := range saved {
		if err := saved[i].Own(); err != nil {
			tb.Fatal(err)
		}
	}
}
