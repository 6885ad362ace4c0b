//go:build !race

// The peer's writes below race with the Checker's reads by design (the
// race detector would report the shared memory, not a defect).

package echo

import (
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// TestCheckerReadsSequenceOnce: a host that rewrites the sequence number
// of an in-place payload (the ring itself) while the Checker judges it,
// between 3 and 7 with seq 7's checksum, never gets seq 3 counted intact.
// The Checker read the field twice, for the bitmap and for the checksum,
// and one check in some 10^5 counted it here.
func TestCheckerReadsSequenceOnce(t *testing.T) {
	const count, payload = 64, 64
	shared := append([]byte(nil), NewPacker(payload).Packet(7)...)
	seqField := (*atomic.Uint64)(unsafe.Pointer(&shared[offSeq]))
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			seqField.Store(3)
			seqField.Store(7)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	c := NewChecker(count, payload)
	deadline := time.Now().Add(500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline) || i < 1e6; i++ {
		c.seen[0] = 0
		if c.Check(shared) == VerdictOK && c.seen[0]&(1<<3) != 0 {
			t.Fatalf("check %d: seq 3 counted intact under seq 7's checksum", i)
		}
	}
}
