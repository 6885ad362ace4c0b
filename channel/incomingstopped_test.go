package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestIncomingStoppedCallback: a packet past the channel's packet size
// stops its incoming queue, and the callback hears it once, with the
// reason.
func TestIncomingStoppedCallback(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, ignore, StateCallbacks{})
	must(t, s.SetMaxPacketSize(64))
	stopped := make(chan error, 2)
	must(t, s.SetIncomingStoppedCallback(func(_ *Channel, err error) { stopped <- err }))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	must(t, c.TrySend(make([]byte, 64)))
	must(t, c.TrySend(make([]byte, 72)))
	must(t, c.TrySend(make([]byte, 8)))
	select {
	case err := <-stopped:
		if !errors.Is(err, StatusInvalidBufferSize) {
			t.Fatalf("the callback's reason: %v", err)
		}
	case <-time.After(testbus.Timeout):
		t.Fatal("no incoming-stopped callback")
	}
	must(t, c.TrySend(make([]byte, 8)))
	must(t, c.Disable())
	if len(stopped) != 0 {
		t.Fatalf("the callback ran again: %v", <-stopped)
	}
}
