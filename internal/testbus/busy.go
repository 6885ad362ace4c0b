package testbus

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
)

// Server is the servicing surface of a device's server, as the servicing
// benchmarks drive it.
type Server interface {
	StopIndications()
	Pause() error
	Save() ([][]byte, error)
	Start() error
	Close() error
}

// BusyConfig describes the servers of a Busy bus and the guest's load on
// them. S is the device's server, C its guest client.
type BusyConfig[S Server, C io.Closer] struct {
	// Servers is how many servers the host offers; MemorySize is the
	// guest's memory (0: DefaultMemory).
	Servers    int
	MemorySize uint64
	// New makes server i on g; RestorePaused restores server i, paused,
	// from its saved chunks.
	New           func(g *host.Guest, i int) (S, error)
	RestorePaused func(g *host.Guest, i int, chunks [][]byte) (S, error)
	// Open opens the guest's client of server i.
	Open func(ctx context.Context, b *Bus, i int) (C, error)
	// Load keeps c, the client of server i, busy until ctx ends. Busy
	// runs Loaders of them (at least one) per client, w numbering them,
	// so that requests queue at a server when it pauses.
	Load    func(ctx context.Context, c C, i, w int)
	Loaders int
	// Progress counts the traffic server s (the i-th) has seen so far;
	// Moved is how much more each server must see after a servicing
	// before the next, and before the first.
	Progress func(s S, i int) uint64
	Moved    uint64
	// Settle is how long a servicing whose pause is timed waits first:
	// servicings come seconds apart, not right after traffic resumed.
	Settle time.Duration
}

// Busy is a Bus whose host offers device servers to its guest, each kept
// busy by the guest without pause: what a servicing host finds.
type Busy[S Server, C io.Closer] struct {
	*Bus
	// Servers are the servers now serving: the restored ones after a
	// Service.
	Servers []S

	cfg     BusyConfig[S, C]
	live    int // Servers[:live] are open
	cancel  context.CancelFunc
	traffic sync.WaitGroup
}

// NewBusy starts a Busy bus of cfg, with its load under way when it
// returns; every goroutine and server of it ends with b.
func NewBusy[S Server, C io.Closer](b *testing.B, cfg BusyConfig[S, C]) *Busy[S, C] {
	b.Helper()
	r := &Busy[S, C]{Servers: make([]S, cfg.Servers), cfg: cfg}
	var made []S
	var newErr error
	r.Bus = New(b, Config{
		Host: host.Config{OnGuest: func(g *host.Guest) {
			for i := range cfg.Servers {
				s, err := cfg.New(g, i)
				if err != nil {
					newErr = err
					return
				}
				made = append(made, s)
			}
		}},
		Guest: guest.Config{MemorySize: cfg.MemorySize},
	})
	// The OnGuest above ran before New took the guest.
	r.live = copy(r.Servers, made)
	var clients []C
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	b.Cleanup(func() {
		r.cancel()
		r.traffic.Wait()
		for _, c := range clients {
			c.Close()
		}
		for _, s := range r.Servers[:r.live] {
			s.Close()
		}
	})
	if newErr != nil {
		b.Fatal(newErr)
	}
	open := Context(b)
	for i := range cfg.Servers {
		c, err := cfg.Open(open, r.Bus, i)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		for w := range max(cfg.Loaders, 1) {
			r.traffic.Go(func() { cfg.Load(ctx, c, i, w) })
		}
	}
	r.moved(b)
	return r
}

// moved waits for Moved more traffic at every server than it had seen.
func (r *Busy[S, C]) moved(b *testing.B) {
	b.Helper()
	for i, s := range r.Servers {
		before := r.cfg.Progress(s, i)
		Eventually(b, "traffic at every server", func() bool {
			return r.cfg.Progress(s, i) >= before+r.cfg.Moved
		})
	}
}

// ServicingTimes are the phases of one servicing of a Busy bus.
type ServicingTimes struct {
	Pause, Save, Restore, Start time.Duration
}

// The phases a servicing benchmark may time.
const (
	PhasePause   = "pause"
	PhaseSave    = "save"
	PhaseRestore = "restore"
	PhaseStart   = "start"
)

// Service pauses every server (StopIndications first, as vmbus host
// does), saves the bus and the servers, drops the host and restores a new
// one with every server restored paused, then starts them, and waits for
// traffic at every server again. timed selects the phase whose time the
// benchmark timer counts (and whose allocations it reports).
func (r *Busy[S, C]) Service(b *testing.B, timed string) ServicingTimes {
	b.Helper()
	var t ServicingTimes
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
	phase(PhasePause, &t.Pause, func() {
		for _, s := range r.Servers {
			s.StopIndications()
		}
		var wg sync.WaitGroup
		for _, s := range r.Servers {
			wg.Go(func() {
				if err := s.Pause(); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	})
	saved := r.Save(b)
	chunks := make([][][]byte, len(r.Servers))
	phase(PhaseSave, &t.Save, func() {
		for i, s := range r.Servers {
			var err error
			if chunks[i], err = s.Save(); err != nil {
				b.Fatal(err)
			}
		}
	})
	r.Stop()
	for _, s := range r.Servers {
		s.Close()
	}
	r.live = 0
	r.Restore(b, host.Config{}, saved)
	phase(PhaseRestore, &t.Restore, func() {
		for i := range r.Servers {
			s, err := r.cfg.RestorePaused(r.Guest, i, chunks[i])
			if err != nil {
				b.Fatal(err)
			}
			r.Servers[i] = s
			r.live++
		}
	})
	phase(PhaseStart, &t.Start, func() {
		for _, s := range r.Servers {
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
		}
		r.Host.Resume()
	})
	r.moved(b)
	return t
}

// BenchServicing services a Busy bus of cfg b.N times, timing phase
// timed: ns/op is that phase's time per servicing (all the servers), and
// every phase's mean is reported as a metric.
func BenchServicing[S Server, C io.Closer](b *testing.B, cfg BusyConfig[S, C], timed string) {
	r := NewBusy(b, cfg)
	var sum ServicingTimes
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		if timed == PhasePause && cfg.Settle > 0 {
			time.Sleep(cfg.Settle)
		}
		t := r.Service(b, timed)
		sum.Pause += t.Pause
		sum.Save += t.Save
		sum.Restore += t.Restore
		sum.Start += t.Start
	}
	n := float64(b.N) * 1e3
	b.ReportMetric(float64(sum.Pause)/n, "pause-µs")
	b.ReportMetric(float64(sum.Save)/n, "save-µs")
	b.ReportMetric(float64(sum.Restore)/n, "restore-µs")
	b.ReportMetric(float64(sum.Start)/n, "start-µs")
}
