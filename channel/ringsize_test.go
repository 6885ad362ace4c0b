package channel

import (
	"errors"
	"math"
	"testing"
)

// TestRingCapacityFillsTheRing: a client's outgoing ring of SetRingPages
// pages takes exactly RingCapacity packets while nobody reads it; the
// next one does not fit.
func TestRingCapacityFillsTheRing(t *testing.T) {
	const pages = 3
	for _, n := range []int{0, 64, 1000, 3000} {
		r := newRig(t)
		s := r.newServer(t, ignore, StateCallbacks{})
		c := r.newClient(t, ignore, StateCallbacks{})
		must(t, c.SetRingPages(pages, pages))
		must(t, s.Enable())
		must(t, c.Enable())
		waitState(t, c, StateActive) // the server is not started: nobody reads
		k := RingCapacity(pages, n)
		if k == 0 {
			t.Fatalf("payload %d: RingCapacity 0", n)
		}
		payload := make([]byte, n)
		for i := range k {
			if err := c.TrySend(payload); err != nil {
				t.Fatalf("payload %d: send %d of %d: %v", n, i+1, k, err)
			}
		}
		if err := c.TrySend(payload); !errors.Is(err, StatusBufferOverflow) {
			t.Fatalf("payload %d: send %d after RingCapacity %d: %v, want StatusBufferOverflow", n, k+1, k, err)
		}
		must(t, s.Start())
	}
}

// TestRingCapacityBounds: sizes no ring has give 0 rather than a wrapped
// product.
func TestRingCapacityBounds(t *testing.T) {
	for _, tc := range []struct{ pages, payload, want int }{
		{65, 64, (64*4096 - 1) / 88},
		{2, 4096, 0},
		{1, 0, 0},
		{0, 0, 0},
		{-1, 0, 0},
		{math.MaxInt, 0, 0},
		{math.MaxInt / 4096, 0, (math.MaxInt/4096*4096 - 4096 - 1) / 24},
		{16, -1, 0},
		{16, MTU + 1, 0},
	} {
		if got := RingCapacity(tc.pages, tc.payload); got != tc.want {
			t.Errorf("RingCapacity(%d, %d) = %d, want %d", tc.pages, tc.payload, got, tc.want)
		}
	}
}
