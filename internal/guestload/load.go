package guestload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/protocol"
)

// Config is one load. The command line checks its bounds; Run trusts them.
type Config struct {
	Duration   time.Duration // stream and verify the disk this long
	Interval   time.Duration // one progress line this often
	Payload    int           // bytes per stream packet
	Pings      int           // round trips of the ping, on the first channel, before the load
	Chunk      uint64        // packets per stream run (each run is checked whole)
	Channels   int           // echo channels to stream on (OpenEchoes' n)
	Rate       int           // packets per second per channel at most, 0: as fast as they come back
	DiskChunk  int           // bytes per disk round
	DiskOffset int64         // verify the disk from this byte on
	DiskBytes  int64         // verify this many bytes of the disk
	DiskEvery  time.Duration // pause this long between disk rounds
	// Idle is how long a stream run waits with nothing coming back
	// before it counts what is missing as lost (echo.StreamConfig.Idle;
	// 0: DefaultIdle). A run cut short by a stall counts its late echoes
	// in the next run, as duplicates: on a loaded machine a servicing can
	// stall a stream longer than echo's 2 s without losing anything.
	Idle time.Duration
}

// DefaultIdle is Config.Idle's default: far past a servicing's blackout,
// so that what it counts as lost did not come back.
const DefaultIdle = 15 * time.Second

// OpenEchoes opens the echo channels cl is offered, up to n, in instance
// order. It returns those it opened even when it fails, for the caller to
// close.
func OpenEchoes(ctx context.Context, cl *guest.Client, n int) ([]*echo.Client, error) {
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

// Run pings on the first channel, then streams on every channel and
// verifies the disk (d, unless nil) concurrently until cfg.Duration has
// passed, printing progress lines and a result line to w. Stream runs and
// disk rounds are whole: one under way at the deadline finishes and
// counts. It fails if anything went wrong or did not check out; the result
// line says what.
func Run(ctx context.Context, w io.Writer, ecs []*echo.Client, d *blk.Disk, cfg Config) error {
	enc := json.NewEncoder(w)
	var (
		c      = counters{channel: make([]atomic.Uint64, len(ecs))}
		errMu  sync.Mutex
		errs   []string
		result Line
		// Stream seconds: from the start to the last stream's end.
		streamEnd atomic.Int64
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		errMu.Unlock()
	}
	pr, err := ecs[0].Ping(ctx, cfg.Pings, 64, time.Second)
	if err != nil {
		fail("ping: %v", err)
	}
	c.lost.Add(pr.Lost)
	c.corrupt.Add(pr.Corrupted)

	start := time.Now()
	deadline := start.Add(cfg.Duration)
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
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-tick.C:
			if err := enc.Encode(c.snapshot(TypeProgress, start, cfg.Payload)); err != nil {
				fail("progress: %v", err)
			}
		case <-done:
			running = false
		}
	}
	dd := result.DiskSeconds
	result = c.snapshot(TypeResult, start, cfg.Payload)
	result.StreamSeconds, result.DiskSeconds = time.Duration(streamEnd.Load()).Seconds(), dd
	for i, ec := range ecs {
		result.Stray += ec.Stray()
		result.ChannelPackets = append(result.ChannelPackets, c.channel[i].Load())
	}
	result.PingSent, result.PingReceived = pr.Sent, pr.Received
	result.PingP50us, result.PingP99us = float64(pr.P50.Nanoseconds())/1e3, float64(pr.P99.Nanoseconds())/1e3
	if pr.Received != uint64(cfg.Pings) {
		fail("ping: %d of %d answered", pr.Received, cfg.Pings)
	}
	result.Errors = errs
	if err := enc.Encode(result); err != nil {
		return fmt.Errorf("demo-load: %v", err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("demo-load: %s", errs[0])
	}
	if result.Lost+result.Duplicated+result.Corrupted+result.Stray > 0 || result.Mismatches > 0 {
		return fmt.Errorf("demo-load: %d lost, %d duplicated, %d corrupted, %d stray packets, %d disk bytes mismatched",
			result.Lost, result.Duplicated, result.Corrupted, result.Stray, result.Mismatches)
	}
	return nil
}

// streamRuns streams checked runs through ec until deadline, adding the
// checks to c and the intact packets to ch. With cfg.Rate it paces the
// runs: a run of at most a tenth of a second's packets, then a pause until
// the packets sent so far are due.
func streamRuns(ctx context.Context, ec *echo.Client, cfg Config, deadline time.Time, c *counters, ch *atomic.Uint64) error {
	run := cfg.Chunk
	if cfg.Rate > 0 {
		run = min(run, max(uint64(cfg.Rate)/10, 1))
	}
	t0 := time.Now()
	var sent uint64
	for time.Now().Before(deadline) && ctx.Err() == nil {
		idle := cfg.Idle
		if idle <= 0 {
			idle = DefaultIdle
		}
		res, err := ec.Stream(ctx, echo.StreamConfig{Payload: cfg.Payload, Count: run, Idle: idle})
		intact := res.Received - res.Duplicated - res.Corrupted
		c.sent.Add(res.Sent)
		c.lost.Add(res.Lost)
		c.dup.Add(res.Duplicated)
		c.corrupt.Add(res.Corrupted)
		c.packets.Add(intact)
		c.bytes.Add(intact * uint64(cfg.Payload))
		ch.Add(intact)
		if err != nil {
			return err
		}
		sent += res.Sent
		if cfg.Rate > 0 {
			due := t0.Add(time.Duration(float64(sent) / float64(cfg.Rate) * float64(time.Second)))
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
