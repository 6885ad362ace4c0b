package echo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// PingResult is what Ping measured. Latencies are round trips: the
// request into the ring, the host's completion back, the wake-ups between.
type PingResult struct {
	Sent, Received, Lost, Duplicated, Corrupted uint64
	Seconds                                     float64
	P50, P99                                    time.Duration
	// CPUPerPing is this process's CPU time (user and system, every
	// thread: the channel's receive goroutine too) over the pings, per
	// request sent: what a polling channel spends for its latency.
	CPUPerPing time.Duration
}

// Ping sends count requests of payload bytes (at least HeaderSize), one at
// a time, each asking for a completion, and checks that every completion
// carries the request's bytes. A request unanswered after timeout is lost
// (its late answer is dropped by the channel layer, so duplicates cannot
// show here: Duplicated is always 0). It returns early with an error if
// the channel closes or ctx ends.
func (c *Client) Ping(ctx context.Context, count, payload int, timeout time.Duration) (PingResult, error) {
	var res PingResult
	if payload < HeaderSize {
		payload = HeaderSize
	}
	k := NewPacker(payload)
	resp := make([]byte, payload+8)
	// Grown as the run goes beyond a million: a count far beyond what a
	// run can reach does not take its memory up front.
	lat := make([]time.Duration, 0, min(count, 1<<20))
	start, cpu := time.Now(), processCPU()
	var err error
	for i := range count {
		if err = ctx.Err(); err != nil {
			break
		}
		req := k.Packet(uint64(i))
		t0 := time.Now()
		res.Sent++
		n, serr := c.ch.SendSynchronousRequest(req, nil, 0, resp, timeout)
		d := time.Since(t0)
		switch {
		case errors.Is(serr, channel.StatusCancelled):
			res.Lost++
			continue
		case errors.Is(serr, channel.StatusBufferTooSmall):
			res.Received++
			res.Corrupted++
			continue
		case serr != nil:
			res.Sent--
			err = fmt.Errorf("echo: ping %d: %w", i, c.hostErr(serr))
		}
		if err != nil {
			break
		}
		res.Received++
		if !echoed(resp[:n], req) {
			res.Corrupted++
			continue
		}
		lat = append(lat, d)
	}
	res.finish(start, cpu, lat)
	return res, err
}

// echoed reports whether resp, a completion, carries req back: its bytes,
// padded to 8 bytes like any packet.
func echoed(resp, req []byte) bool {
	n := len(resp)
	return n >= len(req) && n-len(req) < 8 && bytes.Equal(resp[:len(req)], req)
}

// finish sets the figures of pings that started at start, with the
// process's CPU time cpu then, and took lat (sorted here).
func (res *PingResult) finish(start time.Time, cpu time.Duration, lat []time.Duration) {
	res.Seconds = time.Since(start).Seconds()
	if res.Sent > 0 {
		res.CPUPerPing = (processCPU() - cpu) / time.Duration(res.Sent)
	}
	res.P50, res.P99 = percentile(lat, 50), percentile(lat, 99)
}

// percentile is the p-th percentile of d (nearest rank), 0 when empty. It
// sorts d.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := (len(d)*p + 99) / 100
	if i > 0 {
		i--
	}
	return d[i]
}

// processCPU is the CPU time this process used so far, 0 if the kernel
// does not say.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
