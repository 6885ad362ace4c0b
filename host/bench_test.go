package host_test

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
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
	*testbus.Served
	cfg       host.Config
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
	r.Served = testbus.NewServed(b, r.cfg)
	for range benchGuests {
		cl := r.Connect(b, guest.Config{MemorySize: 1 << 20})
		ctx := testbus.Context(b)
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

// save saves the bus, timed, and closes the old host, untimed.
func (r *busRig) save(b *testing.B) []host.SavedGuest {
	t0 := testbus.CPUTime(b)
	saved, err := r.Host.SaveGuests()
	r.saveCPU += testbus.CPUTime(b) - t0
	if err != nil {
		b.Fatal(err)
	}
	if len(saved) != benchGuests {
		b.Fatalf("%d guests saved", len(saved))
	}
	b.StopTimer()
	// Kept past the old host, as after a failed exec (untimed).
	testbus.Own(b, saved)
	r.Stop()
	return saved
}

// restore restores from saved, timed, and resumes the new host, untimed.
func (r *busRig) restore(b *testing.B, saved []host.SavedGuest) {
	t0 := testbus.CPUTime(b)
	h2, _, err := r.restoreFn(r.cfg, saved)
	r.restoreCPU += testbus.CPUTime(b) - t0
	b.StopTimer()
	for i := range saved {
		saved[i].Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	r.Host = h2
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
