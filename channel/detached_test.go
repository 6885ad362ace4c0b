package channel

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestCleanupAfterDetach: a server channel the guest has open is cleaned
// up after a servicing saved the bus (the guest is detached: the offer is
// left to the successor, and the old host still lists the channel as
// open), and then the old host closes. Its Close of the channel finds the
// channel's worker gone and returns, instead of waiting for it for ever.
func TestCleanupAfterDetach(t *testing.T) {
	leakcheck.Check(t)
	s := newSvc(t)
	s.server = configure(t, s.Guest, newVSP(), echo)
	must(t, s.server.Enable())
	must(t, s.server.Start())
	c := NewClient()
	must(t, c.SetClient(s.Client))
	must(t, c.SetInterface(testType, testInst))
	must(t, c.SetProcessPacketCallbacks(ignore, nil))
	t.Cleanup(func() { c.Cleanup() })
	must(t, c.Enable())
	waitState(t, s.server, StateActive)
	waitState(t, c, StateActive)
	must(t, s.server.Pause())
	saved := s.Save(t)
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	must(t, s.server.Cleanup())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.Stop()
	}()
	select {
	case <-stopped:
	case <-time.After(testbus.Timeout):
		t.Fatal("the detached host's Close waits for a channel cleaned up after the save")
	}
}
