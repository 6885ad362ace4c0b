package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
)

// loadJSON is one stdout line of `vmbus guest demo-load`: a "progress"
// line about every --interval, then one "result" line. The counters are
// totals since the load started; every packet and disk byte counted in
// them has been checked.
type loadJSON struct {
	Type    string  `json:"type"` // "progress" or "result"
	Seconds float64 `json:"seconds"`

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
	StreamSeconds float64  `json:"stream_seconds,omitempty"`
	DiskSeconds   float64  `json:"disk_seconds,omitempty"`
	PingSent      uint64   `json:"ping_sent,omitempty"`
	PingReceived  uint64   `json:"ping_received,omitempty"`
	PingP50us     float64  `json:"ping_p50_us,omitempty"`
	PingP99us     float64  `json:"ping_p99_us,omitempty"`
	Errors        []string `json:"errors,omitempty"`
}

// loadCounters are the load's running totals, written by the stream and
// disk goroutines and read by the progress printer.
type loadCounters struct {
	packets, bytes, sent, lost, dup, corrupt atomic.Uint64
	rounds                                   atomic.Uint64
	diskBytes, mismatches                    atomic.Int64
}

func (c *loadCounters) snapshot(typ string, since time.Time, payload int) loadJSON {
	return loadJSON{Type: typ, Seconds: time.Since(since).Seconds(), Payload: payload,
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), Sent: c.sent.Load(),
		Lost: c.lost.Load(), Duplicated: c.dup.Load(), Corrupted: c.corrupt.Load(), Rounds: c.rounds.Load(),
		DiskBytes: c.diskBytes.Load(), Mismatches: c.mismatches.Load()}
}

// newGuestDemoLoadCmd is the hidden `vmbus guest --socket S demo-load`, the
// guest process of `vmbus demo`: one connection, a short ping, then an echo
// stream and blk write/read-verify rounds side by side for --duration.
func newGuestDemoLoadCmd(socket *string) *cobra.Command {
	var (
		duration, interval time.Duration
		payload, pings     int
		chunk              uint64
		diskChunk          int
	)
	cmd := &cobra.Command{
		Use:    "demo-load [--duration D] [--interval D]",
		Short:  "The guest side of vmbus demo: stream and disk verify at once, JSON progress lines",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if duration <= 0 || interval <= 0 || pings <= 0 || chunk == 0 || chunk > 1<<24 ||
				payload < echo.HeaderSize || payload > echo.DefaultMaxPayload || diskChunk < 4096 || diskChunk > 16<<20 || diskChunk%512 != 0 {
				return usageErrorf("demo-load: want --duration, --interval, --pings > 0, 0 < --chunk <= 2^24, %d <= --payload <= %d, 4096 <= --disk-chunk <= 16 MiB in sectors",
					echo.HeaderSize, echo.DefaultMaxPayload)
			}
			ctx := cmd.Context()
			cl, err := dialGuest(ctx, *socket)
			if err != nil {
				return err
			}
			defer cl.Close()
			octx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ec, err := echo.Open(octx, cl, echo.ClientConfig{})
			if err != nil {
				return failuref("demo-load: echo device: %v", err)
			}
			defer ec.Close()
			d, err := blk.Open(octx, cl, blk.ClientConfig{})
			if err != nil {
				return failuref("demo-load: blk device: %v", err)
			}
			defer d.Close()
			if d.Size() < int64(diskChunk) {
				return usageErrorf("demo-load: the disk's %d bytes are fewer than --disk-chunk %d", d.Size(), diskChunk)
			}
			return runDemoLoad(ctx, cmd.OutOrStdout(), ec, d, demoLoadConfig{duration, interval, payload, pings, chunk, diskChunk})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", 10*time.Second, "stream and verify the disk this long")
	f.DurationVar(&interval, "interval", 200*time.Millisecond, "one progress line this often")
	f.IntVar(&payload, "payload", 256, "bytes per stream packet")
	f.IntVar(&pings, "pings", 1000, "round trips of the ping before the load")
	f.Uint64Var(&chunk, "chunk", 50000, "packets per stream run (each run is checked whole)")
	f.IntVar(&diskChunk, "disk-chunk", 256<<10, "bytes per disk round")
	return cmd
}

type demoLoadConfig struct {
	duration, interval time.Duration
	payload, pings     int
	chunk              uint64
	diskChunk          int
}

// runDemoLoad pings, then streams and verifies the disk concurrently until
// cfg.duration has passed, printing progress lines and a result line to w.
// Stream runs and disk rounds are whole: one under way at the deadline
// finishes and counts.
func runDemoLoad(ctx context.Context, w io.Writer, ec *echo.Client, d *blk.Disk, cfg demoLoadConfig) error {
	enc := json.NewEncoder(w)
	var (
		c      loadCounters
		errMu  sync.Mutex
		errs   []string
		result loadJSON
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	pr, err := ec.Ping(ctx, cfg.pings, 64, time.Second)
	if err != nil {
		fail("ping: %v", err)
	}
	c.lost.Add(pr.Lost)
	c.corrupt.Add(pr.Corrupted)

	start := time.Now()
	deadline := start.Add(cfg.duration)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t0 := time.Now()
		defer func() { result.StreamSeconds = time.Since(t0).Seconds() }()
		for time.Now().Before(deadline) && ctx.Err() == nil {
			res, err := ec.Stream(ctx, echo.StreamConfig{Payload: cfg.payload, Count: cfg.chunk})
			intact := res.Received - res.Duplicated - res.Corrupted
			c.sent.Add(res.Sent)
			c.lost.Add(res.Lost)
			c.dup.Add(res.Duplicated)
			c.corrupt.Add(res.Corrupted)
			c.packets.Add(intact)
			c.bytes.Add(intact * uint64(cfg.payload))
			if err != nil {
				fail("stream: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		t0 := time.Now()
		defer func() { result.DiskSeconds = time.Since(t0).Seconds() }()
		if err := diskRounds(ctx, d, cfg.diskChunk, deadline, &c); err != nil {
			fail("disk: %v", err)
		}
	}()
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
	sd, dd := result.StreamSeconds, result.DiskSeconds
	result = c.snapshot("result", start, cfg.payload)
	result.StreamSeconds, result.DiskSeconds = sd, dd
	result.Stray = ec.Stray()
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

// diskRounds writes a chunk of fresh pseudo-random bytes, flushes, reads it
// back and compares every byte, round after round over the whole disk,
// until deadline. Each round's bytes differ from the last round's at that
// offset, so a write lost in servicing shows as a mismatch.
func diskRounds(ctx context.Context, d *blk.Disk, chunk int, deadline time.Time, c *loadCounters) error {
	slots := d.Size() / int64(chunk)
	want := make([]byte, chunk)
	got := make([]byte, chunk)
	seed := rand.Uint64()
	for round := uint64(0); time.Now().Before(deadline) && ctx.Err() == nil; round++ {
		off := int64(round%uint64(slots)) * int64(chunk)
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
