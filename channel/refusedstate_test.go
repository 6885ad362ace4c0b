package channel

import (
	"errors"
	"testing"
)

// TestRefusedCallsReadStateUnderLock: a refused Enable or Start names the
// channel's state in its error, and reads that state under the lock while
// the channel's worker closes it (here: the server revokes the channel).
// Under -race a read after the unlock is a data race with the worker's
// close (it was one, in Enable and in setRunning).
func TestRefusedCallsReadStateUnderLock(t *testing.T) {
	r := newRig(t)
	for i := 0; i < 20; i++ {
		s, c := r.pair(t, echo, echo, StateCallbacks{}, StateCallbacks{})
		done := make(chan error, 1)
		go func() { done <- s.Disable() }()
		for closing := true; closing; {
			select {
			case err := <-done:
				must(t, err)
				closing = false
			default:
			}
			if err := c.Enable(); !errors.Is(err, StatusInvalidDeviceState) {
				t.Fatalf("second Enable: %v", err)
			}
			c.Start() //nolint:errcheck // refused or not, it reads the state
		}
		must(t, c.Disable())
	}
}
