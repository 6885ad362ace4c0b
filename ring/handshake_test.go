package ring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// mappedRegion is a formatted ring region outside the Go heap, as a
// shared ring is: the race detector treats atomics on such memory
// differently from those on the heap (see publish).
func mappedRegion(t *testing.T, dataSize int) []byte {
	t.Helper()
	region, err := syscall.Mmap(-1, 0, ControlSize+dataSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(region) }) //nolint:errcheck // test memory
	if err := Format(region, true); err != nil {
		t.Fatal(err)
	}
	return region
}

// spinUntil waits for v to reach n. It spins a while before it yields,
// so that both sides of a round start close together, where the race is.
func spinUntil(v *atomic.Int64, n int64) {
	for i := 0; v.Load() < n; i++ {
		if i > 1000 {
			runtime.Gosched()
		}
	}
}

// TestSignalHandshakeMapped races a writer's commit into an empty ring
// against a reader that drained it and goes to sleep (EnableInterrupts),
// both at once, round after round, on a mapped ring: in every round the
// writer must signal or the reader must see the packet. Neither is the
// lost wake-up that leaves a packet in the ring and both ends asleep.
//
// It finds the race only where stores can pass later loads: under the
// race detector (CI's build), whose atomic Store on mapped memory has no
// barrier; elsewhere it checks the protocol in fewer rounds. It stops at
// the first lost round, or after a budget of rounds or time (a loaded
// machine runs fewer rounds, it does not fail).
func TestSignalHandshakeMapped(t *testing.T) {
	rounds, budget := int64(100000), 2*time.Second
	if !raceEnabled || testing.Short() {
		rounds = 5000
	}
	region := mappedRegion(t, 4096)
	w, r := mustWriter(t, region), mustReader(t, region)
	var (
		wArrive, rArrive atomic.Int64 // each side is at round n
		wDone, rDone     atomic.Int64 // the writer committed; the reader drained
		sig              bool         // the writer's, read after wDone
		stop             atomic.Bool  // the reader ends the run early
		lost, ran        int64
		wErr, rErr       error
		wg               sync.WaitGroup
	)
	r.DisableInterrupts()
	wg.Add(2)
	go func() {
		defer wg.Done()
		payload := []byte("x")
		for n := int64(1); n <= rounds && wErr == nil && !stop.Load(); n++ {
			wArrive.Store(n)
			spinUntil(&rArrive, n)
			wErr = w.WriteInBand(uint64(n), 0, payload)
			sig = w.Commit()
			wDone.Store(n)
			spinUntil(&rDone, n)
		}
		wDone.Store(rounds)
	}()
	go func() {
		defer wg.Done()
		var p Packet
		deadline := time.Now().Add(budget)
		for n := int64(1); n <= rounds && rErr == nil; n++ {
			rArrive.Store(n)
			spinUntil(&wArrive, n)
			var more bool
			more, rErr = r.EnableInterrupts()
			spinUntil(&wDone, n)
			if !sig && !more {
				lost++
			}
			ran = n
			// Drain the round's packet with interrupts masked, as a
			// woken reader does, for the next round.
			r.DisableInterrupts()
			if rErr == nil {
				rErr = r.Next(&p)
			}
			r.Commit()
			if lost > 0 || n%1024 == 0 && time.Now().After(deadline) {
				stop.Store(true)
				rDone.Store(n)
				break
			}
			rDone.Store(n)
		}
		rArrive.Store(rounds)
		rDone.Store(rounds)
	}()
	wg.Wait()
	if wErr != nil || rErr != nil {
		t.Fatalf("writer: %v; reader: %v", wErr, rErr)
	}
	if lost > 0 {
		t.Fatalf("round %d: the writer did not signal and the reader did not see the packet", ran)
	}
	t.Logf("%d rounds", ran)
}
