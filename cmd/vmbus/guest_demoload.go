package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// loadJSON is one stdout line of `vmbus guest demo-load`: a "progress"
// line about every --interval, then one "result" line. The counters are
// totals since the load started, over every channel; every packet and disk
// byte counted in them has been checked.
type loadJSON struct {
	Type    string  `json:"type"` // "progress" or "result"
	Seconds float64 `json:"seconds"`

	Channels   int    `json:"channels"` // echo channels streaming
	Payload    int    `json:"payload"`
	Packets    uint64 `json:"packets"`     // stream packets sent and back intact
	Bytes      uint64 `json:"bytes"`       // their payload bytes
	Sent       uint64 `json:"sent"`        // stream packets sent
	Lost       uint64 `json:"lost"`        // stream and ping
	Duplicated uint64 `json:"duplicated"`  // stream
	Corrupted  uint64 `json:"corrupted"`   // stream and ping
	Stray      uint64 `json:"stray"`       // packets back outside any stream
	Rounds     uint64 `json:"disk_rounds"` // disk write-flush-read rounds

	DiskBytes  int64 `json:"disk_bytes"` // written, read back and compared
	Mismatches int64 `json:"mismatches"` // disk bytes that differed

	// The result line only.
	ChannelPackets []uint64 `json:"channel_packets,omitempty"` // Packets by channel, in instance order
	StreamSeconds  float64  `json:"stream_seconds,omitempty"`
	DiskSeconds    float64  `json:"disk_seconds,omitempty"`
	PingSent       uint64   `json:"ping_sent,omitempty"`
	PingReceived   uint64   `json:"ping_received,omitempty"`
	PingP50us      float64  `json:"ping_p50_us,omitempty"`
	PingP99us      float64  `json:"ping_p99_us,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

// loadCounters are the load's running totals, written by the stream and
// disk goroutines and read by the progress printer.
type loadCounters struct {
	packets, bytes, sent, lost, dup, corrupt atomic.Uint64
	rounds                                   atomic.Uint64
	diskBytes, mismatches                    atomic.Int64
	channel                                  []atomic.Uint64 // packets by channel
}

func (c *loadCounters) snapshot(typ string, since time.Time, payload int) loadJSON {
	return loadJSON{Type: typ, Seconds: time.Since(since).Seconds(), Channels: len(c.channel), Payload: payload,
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), Sent: c.sent.Load(),
		Lost: c.lost.Load(), Duplicated: c.dup.Load(), Corrupted: c.corrupt.Load(), Rounds: c.rounds.Load(),
		DiskBytes: c.diskBytes.Load(), Mismatches: c.mismatches.Load()}
}

// Bounds of demo-load's flags.
const (
	maxLoadChannels = 64
	// echoRingBytes is the guest memory one echo channel's rings take.
	echoRingBytes = 2 * echo.DefaultRingPages * 4096
)

// newGuestDemoLoadCmd is the hidden `vmbus guest --socket S demo-load`, the
// guest process of `vmbus demo` and of each guest of `vmbus soak`: one
// connection, a short ping, then echo streams (one per channel, up to
// --channels) and blk write/read-verify rounds side by side for --duration.
func newGuestDemoLoadCmd(socket *string) *cobra.Command {
	var cfg demoLoadConfig
	var disk bool
	cmd := &cobra.Command{
		Use:    "demo-load [--duration D] [--interval D] [--channels N] [--rate N] [--disk=false] [--disk-offset N --disk-bytes N]",
		Short:  "The guest side of vmbus demo and vmbus soak: streams and disk verify at once, JSON progress lines",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.duration <= 0 || cfg.interval <= 0 || cfg.pings <= 0 || cfg.chunk == 0 || cfg.chunk > 1<<24 ||
				cfg.payload < echo.HeaderSize || cfg.payload > echo.DefaultMaxPayload || cfg.diskChunk < 4096 || cfg.diskChunk > 16<<20 || cfg.diskChunk%512 != 0 {
				return usageErrorf("demo-load: want --duration, --interval, --pings > 0, 0 < --chunk <= 2^24, %d <= --payload <= %d, 4096 <= --disk-chunk <= 16 MiB in sectors",
					echo.HeaderSize, echo.DefaultMaxPayload)
			}
			if cfg.channels < 1 || cfg.channels > maxLoadChannels || cfg.rate < 0 || cfg.diskEvery < 0 ||
				cfg.diskOffset < 0 || cfg.diskOffset%512 != 0 || cfg.diskBytes < 0 {
				return usageErrorf("demo-load: want 1 <= --channels <= %d, --rate >= 0, --disk-every >= 0, --disk-offset >= 0 in sectors, --disk-bytes >= 0", maxLoadChannels)
			}
			if *socket == "" {
				return usageErrorf("guest: --socket is required")
			}
			ctx := cmd.Context()
			// Each channel's rings come out of guest memory, beside blk's
			// bounce buffers.
			mem := uint64(guestMemory + (cfg.channels-1)*echoRingBytes)
			cl, err := guest.Dial(ctx, *socket, guest.Config{MemorySize: mem})
			if err != nil {
				return failuref("guest: cannot reach host at %s: %v", *socket, err)
			}
			defer cl.Close()
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ecs, err := openEchoes(octx, cl, cfg.channels)
			for _, ec := range ecs {
				defer ec.Close()
			}
			if err != nil {
				return failuref("demo-load: echo device: %v", err)
			}
			var d *blk.Disk
			if disk {
				if d, err = blk.Open(octx, cl, blk.ClientConfig{}); err != nil {
					return failuref("demo-load: blk device: %v", err)
				}
				defer d.Close()
				if cfg.diskBytes == 0 {
					cfg.diskBytes = d.Size() - cfg.diskOffset
				}
				if cfg.diskOffset > d.Size() || cfg.diskBytes > d.Size()-cfg.diskOffset || cfg.diskBytes < int64(cfg.diskChunk) {
					return usageErrorf("demo-load: the disk's %d bytes hold no --disk-chunk of %d at --disk-offset %d in --disk-bytes %d",
						d.Size(), cfg.diskChunk, cfg.diskOffset, cfg.diskBytes)
				}
			}
			return runDemoLoad(ctx, cmd.OutOrStdout(), ecs, d, cfg)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "stream and verify the disk this long")
	f.DurationVar(&cfg.interval, "interval", 200*time.Millisecond, "one progress line this often")
	f.IntVar(&cfg.payload, "payload", 256, "bytes per stream packet")
	f.IntVar(&cfg.pings, "pings", 1000, "round trips of the ping (on the first channel) before the load")
	f.Uint64Var(&cfg.chunk, "chunk", 50000, "packets per stream run (each run is checked whole)")
	f.IntVar(&cfg.channels, "channels", 1, "stream on this many echo channels at once, or on all offered if fewer")
	f.IntVar(&cfg.rate, "rate", 0, "packets per second per channel at most (0: as fast as they come back)")
	f.BoolVar(&disk, "disk", true, "verify the blk disk beside the streams")
	f.IntVar(&cfg.diskChunk, "disk-chunk", 256<<10, "bytes per disk round")
	f.Int64Var(&cfg.diskOffset, "disk-offset", 0, "verify the disk from this byte on (guests sharing a disk each take a region)")
	f.Int64Var(&cfg.diskBytes, "disk-bytes", 0, "verify this many bytes of the disk (0: to its end)")
	f.DurationVar(&cfg.diskEvery, "disk-every", 0, "pause this long between disk rounds")
	return cmd
}

type demoLoadConfig struct {
	duration, interval    time.Duration
	payload, pings        int
	chunk                 uint64
	channels, rate        int
	diskChunk             int
	diskOffset, diskBytes int64
	diskEvery             time.Duration
}

// openEchoes opens the echo channels cl is offered, up to n, in instance
// order. It returns those it opened even when it fails, for the caller to
// close.
func openEchoes(ctx context.Context, cl *guest.Client, n int) ([]*echo.Client, error) {
	// The first echo offer may come before the others: wait for it, then
	// for the whole list, which RequestOffers has once every offer is in.
	if _, err := cl.WaitOffer(ctx, echo.InterfaceType, protocol.GUID{}); err != nil {
		return nil, err
	}
	offers, err := cl.RequestOffers(ctx)
	if err != nil {
		return nil, err
	}
	var instances []protocol.GUID
	for _, o := range offers {
		if o.InterfaceType == echo.InterfaceType {
			instances = append(instances, o.InterfaceInstance)
		}
	}
	slices.SortFunc(instances, func(a, b protocol.GUID) int { return bytes.Compare(a[:], b[:]) })
	var ecs []*echo.Client
	for _, in := range instances[:min(n, len(instances))] {
		ec, err := echo.Open(ctx, cl, echo.ClientConfig{Instance: in})
		if err != nil {
			return ecs, fmt.Errorf("instance %v: %w", in, err)
		}
		ecs = append(ecs, ec)
	}
	return ecs, nil
}

// runDemoLoad pings on the first channel, then streams on every channel
// and verifies the disk (d, unless nil) concurrently until cfg.duration
// has passed, printing progress lines and a result line to w. Stream runs
// and disk rounds are whole: one under way at the deadline finishes and
// counts.
func runDemoLoad(ctx context.Context, w io.Writer, ecs []*echo.Client, d *blk.Disk, cfg demoLoadConfig) error {
	enc := json.NewEncoder(w)
	var (
		c      = loadCounters{channel: make([]atomic.Uint64, len(ecs))}
		errMu  sync.Mutex
		errs   []string
		result loadJSON
		// Stream seconds: from the start to the last stream's end.
		streamEnd atomic.Int64
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	pr, err := ecs[0].Ping(ctx, cfg.pings, 64, time.Second)
	if err != nil {
		fail("ping: %v", err)
	}
	c.lost.Add(pr.Lost)
	c.corrupt.Add(pr.Corrupted)

	start := time.Now()
	deadline := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for i, ec := range ecs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				end := int64(time.Since(start))
				for {
					old := streamEnd.Load()
					if end <= old || streamEnd.CompareAndSwap(old, end) {
						return
					}
				}
			}()
			if err := streamRuns(ctx, ec, cfg, deadline, &c, &c.channel[i]); err != nil {
				fail("stream on channel %d: %v", i, err)
			}
		}()
	}
	if d != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			defer func() { result.DiskSeconds = time.Since(t0).Seconds() }()
			if err := diskRounds(ctx, d, cfg, deadline, &c); err != nil {
				fail("disk: %v", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-tick.C:
			if err := enc.Encode(c.snapshot("progress", start, cfg.payload)); err != nil {
				fail("progress: %v", err)
			}
		case <-done:
			running = false
		}
	}
	dd := result.DiskSeconds
	result = c.snapshot("result", start, cfg.payload)
	result.StreamSeconds, result.DiskSeconds = time.Duration(streamEnd.Load()).Seconds(), dd
	for i, ec := range ecs {
		result.Stray += ec.Stray()
		result.ChannelPackets = append(result.ChannelPackets, c.channel[i].Load())
	}
	result.PingSent, result.PingReceived = pr.Sent, pr.Received
	result.PingP50us, result.PingP99us = float64(pr.P50.Nanoseconds())/1e3, float64(pr.P99.Nanoseconds())/1e3
	if pr.Received != uint64(cfg.pings) {
		fail("ping: %d of %d answered", pr.Received, cfg.pings)
	}
	result.Errors = errs
	if err := enc.Encode(result); err != nil {
		return failuref("demo-load: %v", err)
	}
	if len(errs) > 0 {
		return failuref("demo-load: %s", errs[0])
	}
	if result.Lost+result.Duplicated+result.Corrupted+result.Stray > 0 || result.Mismatches > 0 {
		return failuref("demo-load: %d lost, %d duplicated, %d corrupted, %d stray packets, %d disk bytes mismatched",
			result.Lost, result.Duplicated, result.Corrupted, result.Stray, result.Mismatches)
	}
	return nil
}

// streamRuns streams checked runs through ec until deadline, adding the
// checks to c and the intact packets to ch. With cfg.rate it paces the
// runs: a run of at most a tenth of a second's packets, then a pause until
// the packets sent so far are due.
func streamRuns(ctx context.Context, ec *echo.Client, cfg demoLoadConfig, deadline time.Time, c *loadCounters, ch *atomic.Uint64) error {
	run := cfg.chunk
	if cfg.rate > 0 {
		run = min(run, max(uint64(cfg.rate)/10, 1))
	}
	t0 := time.Now()
	var sent uint64
	for time.Now().Before(deadline) && ctx.Err() == nil {
		res, err := ec.Stream(ctx, echo.StreamConfig{Payload: cfg.payload, Count: run})
		intact := res.Received - res.Duplicated - res.Corrupted
		c.sent.Add(res.Sent)
		c.lost.Add(res.Lost)
		c.dup.Add(res.Duplicated)
		c.corrupt.Add(res.Corrupted)
		c.packets.Add(intact)
		c.bytes.Add(intact * uint64(cfg.payload))
		ch.Add(intact)
		if err != nil {
			return err
		}
		sent += res.Sent
		if cfg.rate > 0 {
			due := t0.Add(time.Duration(float64(sent) / float64(cfg.rate) * float64(time.Second)))
			if !sleepUntil(ctx, due, deadline) {
				return nil
			}
		}
	}
	return nil
}

// sleepUntil waits until t, or deadline if sooner, or until ctx ends,
// reporting whether the time came.
func sleepUntil(ctx context.Context, t, deadline time.Time) bool {
	if deadline.Before(t) {
		t = deadline
	}
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// diskRounds writes a chunk of fresh pseudo-random bytes, flushes, reads it
// back and compares every byte, round after round over the disk's bytes
// [cfg.diskOffset, +cfg.diskBytes), until deadline, pausing cfg.diskEvery
// between rounds. Each round's bytes differ from the last round's at that
// offset, so a write lost in servicing shows as a mismatch.
func diskRounds(ctx context.Context, d *blk.Disk, cfg demoLoadConfig, deadline time.Time, c *loadCounters) error {
	chunk := cfg.diskChunk
	slots := cfg.diskBytes / int64(chunk)
	want := make([]byte, chunk)
	got := make([]byte, chunk)
	seed := rand.Uint64()
	for round := uint64(0); time.Now().Before(deadline) && ctx.Err() == nil; round++ {
		if round > 0 && cfg.diskEvery > 0 && !sleepUntil(ctx, time.Now().Add(cfg.diskEvery), deadline) {
			break
		}
		off := cfg.diskOffset + int64(round%uint64(slots))*int64(chunk)
		rng := rand.New(rand.NewPCG(seed, round))
		for i := 0; i < chunk; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				want[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := d.WriteAt(want, off); err != nil {
			return fmt.Errorf("write at %d: %w", off, err)
		}
		if err := d.Flush(); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		clear(got)
		if _, err := d.ReadAt(got, off); err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		if !bytes.Equal(want, got) {
			var n int64
			for i := range want {
				if want[i] != got[i] {
					n++
				}
			}
			c.mismatches.Add(n)
		}
		c.diskBytes.Add(int64(chunk))
		c.rounds.Add(1)
	}
	return nil
}
