package host_test

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

// busRig is a host serving benchGuests guests in this process, each with
// two open echo channels, for the servicing benchmarks.
type busRig struct {
	cfg host.Config
	h   *host.Host
	wg  sync.WaitGroup
}

const benchGuests = 32

func newBusRig(b *testing.B) *busRig {
	b.Helper()
	devs := []host.Device{
		newEchoInstance(protocol.MustParseGUID("00000000-0000-0000-0000-00000000000a"), nil),
		newEchoInstance(protocol.MustParseGUID("00000000-0000-0000-0000-00000000000b"), nil),
	}
	r := &busRig{cfg: host.Config{Devices: devs}}
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

// save saves the bus, timed, and closes the old host, untimed.
func (r *busRig) save(b *testing.B) []host.SavedGuest {
	saved, err := r.h.SaveGuests()
	if err != nil {
		b.Fatal(err)
	}
	if len(saved) != benchGuests {
		b.Fatalf("%d guests saved", len(saved))
	}
	b.StopTimer()
	r.h.Close()
	r.wg.Wait()
	return saved
}

// restore restores from saved, timed, and resumes the new host, untimed.
func (r *busRig) restore(b *testing.B, saved []host.SavedGuest) {
	h2, _, err := host.Restore(r.cfg, saved)
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
}

// BenchmarkRestore is the bus restore of a servicing: 32 guests, each with
// two open channels.
func BenchmarkRestore(b *testing.B) {
	r := newBusRig(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		saved := r.save(b)
		b.StartTimer()
		r.restore(b, saved)
	}
}
