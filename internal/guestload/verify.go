package guestload

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/govmbus/govmbus/device/blk"
)

// VerifyResult is one whole-disk check; its JSON form is `vmbus guest disk
// verify --json`.
type VerifyResult struct {
	DiskSize         int64   `json:"disk_size"`
	Size             int64   `json:"size"`
	Mismatches       int64   `json:"mismatches"`
	FirstMismatch    int64   `json:"first_mismatch"` // -1: none
	Seconds          float64 `json:"seconds"`
	WriteBytesPerSec float64 `json:"write_bytes_per_sec"`
	ReadBytesPerSec  float64 `json:"read_bytes_per_sec"`
}

// verifyChunk is the bytes VerifyDisk writes or reads at a time.
const verifyChunk = 4 << 20

// VerifyDisk writes a pseudo-random pattern over d's bytes [0, size),
// flushes, reads it back and counts the bytes that differ. An I/O error
// means nothing was verified to the end. Preconditions: 0 <= size <=
// d.Size().
func VerifyDisk(d *blk.Disk, size int64) (VerifyResult, error) {
	res := VerifyResult{DiskSize: d.Size(), Size: size, FirstMismatch: -1}
	seed := rand.Uint64()
	gen := func(off int64, b []byte) {
		rng := rand.New(rand.NewPCG(seed, uint64(off)))
		for i := 0; i < len(b); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	}
	want := make([]byte, min(verifyChunk, size))
	got := make([]byte, len(want))
	start := time.Now()
	for off := int64(0); off < size; off += verifyChunk {
		b := want[:min(verifyChunk, size-off)]
		gen(off, b)
		if _, err := d.WriteAt(b, off); err != nil {
			return res, fmt.Errorf("write at %d: %w", off, err)
		}
	}
	if err := d.Flush(); err != nil {
		return res, fmt.Errorf("flush: %w", err)
	}
	mid := time.Now()
	for off := int64(0); off < size; off += verifyChunk {
		b, g := want[:min(verifyChunk, size-off)], got[:min(verifyChunk, size-off)]
		if _, err := d.ReadAt(g, off); err != nil {
			return res, fmt.Errorf("read at %d: %w", off, err)
		}
		gen(off, b)
		if !bytes.Equal(b, g) {
			for i := range b {
				if b[i] != g[i] {
					if res.FirstMismatch < 0 {
						res.FirstMismatch = off + int64(i)
					}
					res.Mismatches++
				}
			}
		}
	}
	end := time.Now()
	res.Seconds = end.Sub(start).Seconds()
	if w := mid.Sub(start).Seconds(); w > 0 {
		res.WriteBytesPerSec = float64(size) / w
	}
	if r := end.Sub(mid).Seconds(); r > 0 {
		res.ReadBytesPerSec = float64(size) / r
	}
	return res, nil
}
