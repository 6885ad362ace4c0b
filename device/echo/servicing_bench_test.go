package echo

import (
	"context"
	"testing"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

func benchInstance(i int) protocol.GUID {
	g := InterfaceInstance
	g[15] = byte(i + 1)
	return g
}

// busy is 8 echo servers on one guest, each streamed at without pause by
// a client of the guest: what a servicing host finds.
var busy = testbus.BusyConfig[*Server, *Client]{
	Servers:    8,
	MemorySize: 64 << 20,
	New: func(g *host.Guest, i int) (*Server, error) {
		return NewServer(g, ServerConfig{Instance: benchInstance(i)})
	},
	RestorePaused: func(g *host.Guest, i int, chunks [][]byte) (*Server, error) {
		return RestorePausedServer(g, ServerConfig{Instance: benchInstance(i)}, chunks)
	},
	Open: func(ctx context.Context, b *testbus.Bus, i int) (*Client, error) {
		return Open(ctx, b.Client, ClientConfig{Instance: benchInstance(i)})
	},
	Load: func(ctx context.Context, c *Client, _, _ int) {
		// Streams until cancelled; a servicing looks like a pause.
		c.Stream(ctx, StreamConfig{Payload: 256, Count: 1 << 28, Idle: time.Minute}) //nolint:errcheck // ends with the benchmark
	},
	Progress: func(s *Server, _ int) uint64 { return s.Channel().Stats().PacketsIn },
	Moved:    64,
	// The servers' workers are settled before a timed pause (channel: a
	// worker reads its goroutine id 100 ms after it starts).
	Settle: 150 * time.Millisecond,
}

// BenchmarkRestorePausedServer: RestorePausedServer of 8 echo servers
// saved off paused servers that had traffic (host.Restore not counted).
func BenchmarkRestorePausedServer(b *testing.B) {
	testbus.BenchServicing(b, busy, testbus.PhaseRestore)
}

// BenchmarkStartRestored: Start of 8 restored echo servers.
func BenchmarkStartRestored(b *testing.B) { testbus.BenchServicing(b, busy, testbus.PhaseStart) }

// BenchmarkSave: Save of 8 paused echo servers.
func BenchmarkSave(b *testing.B) { testbus.BenchServicing(b, busy, testbus.PhaseSave) }

// BenchmarkPauseBusy: StopIndications of 8 echo servers streamed at, then
// Pause of each (side by side), until the last Pause returns.
func BenchmarkPauseBusy(b *testing.B) { testbus.BenchServicing(b, busy, testbus.PhasePause) }
