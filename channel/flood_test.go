package channel

import (
	"bytes"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestSignalFloodPauses: a peer that signals with nothing in the ring
// wakes the receive goroutine each time; every floodWakeups such wake-ups
// in a row it pauses, and the channel still works afterwards.
func TestSignalFloodPauses(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
	c.mu.Lock()
	toServer := c.ep.out
	c.mu.Unlock()
	const n = 3*floodWakeups + 10
	for i := range n {
		before := s.Stats().EmptyWakeups
		if err := toServer.Signal(); err != nil {
			t.Fatal(err)
		}
		// One wake-up per signal: wait for it before the next, so
		// the event does not merge them.
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().EmptyWakeups == before {
			if time.Now().After(deadline) {
				t.Fatalf("signal %d: no wake-up", i)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	if got := s.st.floodPauses.Load(); got < 3 {
		t.Fatalf("%d pauses after %d empty wake-ups in a row, want at least 3", got, n)
	}
	resp := make([]byte, 8)
	k, err := c.SendSynchronousRequest([]byte("after..."), nil, 0, resp, 5*time.Second)
	if err != nil || !bytes.Equal(resp[:k], []byte("after...")) {
		t.Fatalf("after the flood: %q, %v", resp[:k], err)
	}
}
