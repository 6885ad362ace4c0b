package blk

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

const benchDisk = 4 << 20

func benchInstance(i int) protocol.GUID {
	g := InterfaceInstance
	g[15] = byte(i + 1)
	return g
}

// busyRig is a host with blk servers on its one guest, each written to
// without pause by a Disk of the guest: what a servicing host finds.
type busyRig struct {
	h     *host.Host
	wg    sync.WaitGroup
	file  *os.File
	srvs  []*Server
	ios   []atomic.Uint64
	stop  atomic.Bool
	io    sync.WaitGroup
	ready chan error
}

func newBusyRig(b *testing.B, servers int) *busyRig {
	b.Helper()
	r := &busyRig{srvs: make([]*Server, servers), ios: make([]atomic.Uint64, servers), ready: make(chan error, 1)}
	f, err := os.CreateTemp(b.TempDir(), "disk")
	if err != nil {
		b.Fatal(err)
	}
	r.file = f
	if err := f.Truncate(benchDisk); err != nil {
		b.Fatal(err)
	}
	r.h = host.New(host.Config{OnGuest: func(g *host.Guest) {
		var err error
		for i := range r.srvs {
			if r.srvs[i], err = NewServer(g, f, r.config(i)); err != nil {
				break
			}
		}
		r.ready <- err
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
	cl, err := guest.New(ctx, gc, guest.Config{MemorySize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if err := <-r.ready; err != nil {
		b.Fatal(err)
	}
	var disks []*Disk
	b.Cleanup(func() {
		r.stop.Store(true)
		r.io.Wait()
		for _, d := range disks {
			d.Close()
		}
		for _, s := range r.srvs {
			if s != nil {
				s.Close()
			}
		}
		cl.Close()
		r.h.Close()
		r.wg.Wait()
		f.Close()
	})
	for i := range r.srvs {
		d, err := Open(ctx, cl, ClientConfig{Instance: benchInstance(i)})
		if err != nil {
			b.Fatal(err)
		}
		disks = append(disks, d)
		// Writers in parallel, so that requests are queued when the
		// servers pause.
		for w := range 4 {
			r.io.Add(1)
			go func() {
				defer r.io.Done()
				buf := make([]byte, 64<<10)
				off := int64(w) * int64(len(buf))
				for !r.stop.Load() {
					if _, err := d.WriteAt(buf, off); err != nil {
						return
					}
					r.ios[i].Add(1)
					if off += 4 * int64(len(buf)); off+int64(len(buf)) > benchDisk {
						off = int64(w) * int64(len(buf))
					}
				}
			}()
		}
	}
	time.Sleep(20 * time.Millisecond)
	return r
}

func (r *busyRig) config(i int) ServerConfig {
	return ServerConfig{Instance: benchInstance(i), Size: benchDisk}
}

type servicingTimes struct {
	pause, save, restore, start time.Duration
}

// service pauses every server (StopIndications first, as vmbus host
// does), saves the bus and the servers, drops the host and restores a new
// one with every server restored paused, then starts them; the benchmark
// timer counts phase timed.
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
			if r.srvs[i], err = RestorePausedServer(guests[0], r.file, r.config(i), chunks[i]); err != nil {
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
	for i := range r.srvs {
		before := r.ios[i].Load()
		deadline := time.Now().Add(10 * time.Second)
		for r.ios[i].Load() < before+8 {
			if time.Now().After(deadline) {
				b.Fatal("no I/O after the restore")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	return t
}

// benchServicing services a busy rig of 4 blk servers b.N times, timing
// one phase (ns/op, allocations); it reports every phase's mean too.
func benchServicing(b *testing.B, timed string) {
	const servers = 4
	r := newBusyRig(b, servers)
	var sum servicingTimes
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
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

// BenchmarkRestorePausedServer: RestorePausedServer of 4 blk servers
// saved off paused servers that had writes under way.
func BenchmarkRestorePausedServer(b *testing.B) { benchServicing(b, "restore") }

// BenchmarkSave: Save of 4 paused blk servers.
func BenchmarkSave(b *testing.B) { benchServicing(b, "save") }

// BenchmarkPauseBusy: StopIndications of 4 blk servers written to, then
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
