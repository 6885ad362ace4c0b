package channel

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestEventGoneThenClose: when a running channel's incoming event goes
// away (the connection ended under it) the receive loop parks for good,
// and the close that follows must not wait for it to park again. The
// close ran deactivate, which reset the loop's "parked" to "asleep and
// nothing to send" (false here: the loop had woken to find the event
// gone) and then waited for a loop that would never look again.
func TestEventGoneThenClose(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	_, c := r.pair(t, ignore, ignore, StateCallbacks{}, StateCallbacks{})
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	ep.in.Close() //nolint:errcheck // the connection's end, as the loop sees it
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		waitState(t, c, StateClosed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		c.mu.Lock()
		parked, gone, exit := c.rxParked, c.rxGone, c.rxExit
		c.mu.Unlock()
		t.Fatalf("the channel did not close within 10 s of its event going away (loop parked %v, gone %v, exit %v)", parked, gone, exit)
	}
}
