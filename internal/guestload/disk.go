package guestload

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/govmbus/govmbus/device/blk"
)

// diskRounds writes a chunk of fresh pseudo-random bytes, flushes, reads it
// back and compares every byte, round after round over the disk's bytes
// [cfg.DiskOffset, +cfg.DiskBytes), until deadline, pausing cfg.DiskEvery
// between rounds. Each round's bytes differ from the last round's at that
// offset, so a write lost in servicing shows as a mismatch.
func diskRounds(ctx context.Context, d *blk.Disk, cfg Config, deadline time.Time, c *counters) error {
	chunk := cfg.DiskChunk
	slots := cfg.DiskBytes / int64(chunk)
	want := make([]byte, chunk)
	got := make([]byte, chunk)
	seed := rand.Uint64()
	for round := uint64(0); time.Now().Before(deadline) && ctx.Err() == nil; round++ {
		if round > 0 && cfg.DiskEvery > 0 && !sleepUntil(ctx, time.Now().Add(cfg.DiskEvery), deadline) {
			break
		}
		off := cfg.DiskOffset + int64(round%uint64(slots))*int64(chunk)
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
