package host_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// nopDevice opens and closes channels and does nothing with them: the
// benchmarks measure the bus, not a device.
type nopDevice struct{ spec host.OfferSpec }

func (d nopDevice) Offer() host.OfferSpec    { return d.spec }
func (d nopDevice) Open(*host.Channel) error { return nil }
func (d nopDevice) Close(*host.Channel)      {}

// busRig is a host serving benchGuests guests in this process, each with
// two open channels, for the servicing benchmarks.
type busRig struct {
	cfg       host.Config
	h         *host.Host
	wg        sync.WaitGroup
	restoreFn func(host.Config, []host.SavedGuest) (*host.Host, []*host.Guest, error)

	saveCPU, restoreCPU time.Duration // CPU time in SaveGuests and the restores
}

const benchGuests = 32

func newBusRig(b *testing.B) *busRig {
	b.Helper()
	devs := []host.Device{
		nopDevice{host.OfferSpec{InterfaceType: echoType, InterfaceInstance: protocol.MustParseGUID("00000000-0000-0000-0000-00000000000a")}},
		nopDevice{host.OfferSpec{InterfaceType: echoType, InterfaceInstance: protocol.MustParseGUID("00000000-0000-0000-0000-00000000000b")}},
	}
	r := &busRig{cfg: host.Config{Devices: devs}, restoreFn: host.Restore}
	r.h = host.New(r.cfg)
	b.Cleanup(func() {
		r.h.Close()
		r.wg.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range benchGuests {
		hc, gc, err := transport.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.h.ServeConn(hc)
		}()
		cl, err := guest.New(ctx, gc, guest.Config{MemorySize: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cl.Close(); gc.Close() })
		for _, d := range devs {
			o, err := cl.WaitOffer(ctx, echoType, d.Offer().InterfaceInstance)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cl.Open(ctx, o, guest.OpenOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	return r
}

// cpuTime is the CPU time this process used so far, user and system: on
// a shared box a steadier measure than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// save saves the bus, timed, and closes the old host, untimed.
func (r *busRig) save(b *testing.B) []host.SavedGuest {
	t0 := cpuTime()
	saved, err := r.h.SaveGuests()
	r.saveCPU += cpuTime() - t0
	if err != nil {
		b.Fatal(err)
	}
	if len(saved) != benchGuests {
		b.Fatalf("%d guests saved", len(saved))
	}
	b.StopTimer()
	// Kept past the old host, as after a failed exec (untimed).
	for i := range saved {
		if err := saved[i].Own(); err != nil {
			b.Fatal(err)
		}
	}
	r.h.Close()
	r.wg.Wait()
	return saved
}

// restore restores from saved, timed, and resumes the new host, untimed.
func (r *busRig) restore(b *testing.B, saved []host.SavedGuest) {
	t0 := cpuTime()
	h2, _, err := r.restoreFn(r.cfg, saved)
	r.restoreCPU += cpuTime() - t0
	b.StopTimer()
	for i := range saved {
		saved[i].Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	r.h = h2
	h2.Resume()
}

// BenchmarkSaveGuests is the bus save of a servicing: 32 guests, each with
// two open channels.
func BenchmarkSaveGuests(b *testing.B) {
	r := newBusRig(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		saved := r.save(b)
		r.restore(b, saved)
		b.StartTimer()
	}
	b.ReportMetric(float64(r.saveCPU.Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkRestore is the bus restore of a servicing: 32 guests, each with
// two open channels.
func BenchmarkRestore(b *testing.B) { benchRestore(b, host.Restore) }

// BenchmarkRestoreOwned is BenchmarkRestore taking the files over, as a
// successor does.
func BenchmarkRestoreOwned(b *testing.B) { benchRestore(b, host.RestoreOwned) }

func benchRestore(b *testing.B, restore func(host.Config, []host.SavedGuest) (*host.Host, []*host.Guest, error)) {
	r := newBusRig(b)
	r.restoreFn = restore
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		saved := r.save(b)
		b.StartTimer()
		r.restore(b, saved)
	}
	b.ReportMetric(float64(r.restoreCPU.Microseconds())/float64(b.N), "cpu-µs/op")
}
