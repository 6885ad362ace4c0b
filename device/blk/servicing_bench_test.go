package blk

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

const benchDisk = 4 << 20

func benchInstance(i int) protocol.GUID {
	g := InterfaceInstance
	g[15] = byte(i + 1)
	return g
}

// benchServicing services 4 blk servers on one guest, each written to
// without pause by a Disk of the guest (what a servicing host finds), b.N
// times, timing phase timed.
func benchServicing(b *testing.B, timed string) {
	const servers = 4
	f, err := os.CreateTemp(b.TempDir(), "disk")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if err := f.Truncate(benchDisk); err != nil {
		b.Fatal(err)
	}
	cfg := func(i int) ServerConfig { return ServerConfig{Instance: benchInstance(i), Size: benchDisk} }
	ios := make([]atomic.Uint64, servers)
	testbus.BenchServicing(b, testbus.BusyConfig[*Server, *Disk]{
		Servers:    servers,
		MemorySize: 64 << 20,
		New:        func(g *host.Guest, i int) (*Server, error) { return NewServer(g, f, cfg(i)) },
		RestorePaused: func(g *host.Guest, i int, chunks [][]byte) (*Server, error) {
			return RestorePausedServer(g, f, cfg(i), chunks)
		},
		Open: func(ctx context.Context, bus *testbus.Bus, i int) (*Disk, error) {
			return Open(ctx, bus.Client, ClientConfig{Instance: benchInstance(i)})
		},
		// Writers in parallel, so that requests are queued when the
		// servers pause.
		Loaders: 4,
		Load: func(ctx context.Context, d *Disk, i, w int) {
			buf := make([]byte, 64<<10)
			off := int64(w) * int64(len(buf))
			for ctx.Err() == nil {
				if _, err := d.WriteAt(buf, off); err != nil {
					return
				}
				ios[i].Add(1)
				if off += 4 * int64(len(buf)); off+int64(len(buf)) > benchDisk {
					off = int64(w) * int64(len(buf))
				}
			}
		},
		Progress: func(_ *Server, i int) uint64 { return ios[i].Load() },
		Moved:    8,
	}, timed)
}

// BenchmarkRestorePausedServer: RestorePausedServer of 4 blk servers
// saved off paused servers that had writes under way.
func BenchmarkRestorePausedServer(b *testing.B) { benchServicing(b, testbus.PhaseRestore) }

// BenchmarkSave: Save of 4 paused blk servers.
func BenchmarkSave(b *testing.B) { benchServicing(b, testbus.PhaseSave) }

// BenchmarkPauseBusy: StopIndications of 4 blk servers written to, then
// Pause of each (side by side), until the last Pause returns.
func BenchmarkPauseBusy(b *testing.B) { benchServicing(b, testbus.PhasePause) }
