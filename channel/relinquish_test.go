package channel

import (
	"context"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/transport"
)

// TestRelinquish: after Relinquish a paused server reads nothing from its
// event: the peer's signal stays in the event, for
// the process the channel was handed to. Before Relinquish the paused
// channel's receive goroutine takes it (it wakes up, and finds nothing it
// may do). A channel not paused is refused.
func TestRelinquish(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, c := r.pair(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { p.Complete(nil) }, ignore, StateCallbacks{}, StateCallbacks{})
	if err := s.Servicing().Relinquish(); StatusOf(err) != StatusInvalidDeviceState {
		t.Fatalf("Relinquish of a running channel: %v", err)
	}
	must(t, s.Pause())
	s.mu.Lock()
	in := s.ep.in
	s.mu.Unlock()
	// The process the channel is handed to: its own descriptor of the
	// event, read only once s relinquished it.
	f, err := in.File()
	must(t, err)
	other, err := transport.AdoptEvent(f)
	must(t, err)
	defer other.Close()
	signalled := func() bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return other.Wait(ctx) == nil
	}
	c.mu.Lock()
	peer := c.ep.out // the peer's signal to s
	c.mu.Unlock()
	wakeups := s.st.emptyWakeups.Load()
	must(t, peer.Signal())
	eventually(t, "the paused channel's goroutine woken by the peer's signal", func() bool { return s.st.emptyWakeups.Load() > wakeups })
	must(t, s.Servicing().Relinquish())
	if signalled() {
		t.Fatal("a signal in the event after Relinquish, before the peer's")
	}
	must(t, peer.Signal())
	time.Sleep(20 * time.Millisecond)
	if !signalled() {
		t.Fatal("the peer's signal was taken after Relinquish")
	}
}
