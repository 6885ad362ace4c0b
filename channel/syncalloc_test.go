package channel

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestSynchronousRequestAllocatesNothing: a request with a timeout, the
// shape of echo's ping and blk's requests, allocates nothing once its
// packet object exists (the timeout's timer is the packet's, reused).
func TestSynchronousRequestAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	leakcheck.Check(t)
	r := newRig(t)
	_, c := r.pair(t, ignore, ignore, StateCallbacks{}, StateCallbacks{})
	req, resp := []byte("request."), make([]byte, 8)
	send := func() {
		if _, err := c.SendSynchronousRequest(req, nil, 0, resp, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	send() // the packet object and its timer are made once
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}
