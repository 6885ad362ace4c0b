package channel

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestStartHeld: a paused server started with StartHeld runs Started but
// indicates nothing, and runs no PostStarted, until Release; then the
// packets sent meanwhile arrive and PostStarted runs. A Pause before
// Release ends the hold: a later Release does nothing, and Start starts
// the channel as usual.
func TestStartHeld(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var got atomic.Int32
	var srec recorder
	count := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { got.Add(1); p.Complete(nil) }
	s, c := r.pair(t, count, ignore, srec.callbacks(), StateCallbacks{})
	send := func(n int32) { t.Helper(); sendBytes(t, c, n) }
	quiet := func(want int32) {
		t.Helper()
		time.Sleep(30 * time.Millisecond)
		if n := got.Load(); n != want {
			t.Fatalf("%d packets indicated, want %d", n, want)
		}
	}

	must(t, s.Pause())
	srec.reset()
	send(2)
	must(t, s.Servicing().StartHeld())
	if got, want := srec.String(), "Started"; got != want {
		t.Fatalf("callbacks %s after StartHeld, want %s", got, want)
	}
	send(1)
	quiet(0)
	s.Servicing().Release()
	eventually(t, "the packets sent while held", func() bool { return got.Load() == 3 })
	eventually(t, "PostStarted", func() bool { return srec.String() == "Started,PostStarted" })
	s.Servicing().Release() // not held: nothing
	send(1)
	eventually(t, "a packet after Release", func() bool { return got.Load() == 4 })

	// A pause ends the hold.
	must(t, s.Pause())
	srec.reset()
	must(t, s.Servicing().StartHeld())
	must(t, s.Pause())
	send(1)
	s.Servicing().Release()
	quiet(4)
	if got, want := srec.String(), "Started,Suspend"; got != want {
		t.Fatalf("callbacks %s, want %s (held, paused before any packet)", got, want)
	}
	must(t, s.Start())
	eventually(t, "the packet after Start", func() bool { return got.Load() == 5 })
	if s.State() != StateActive {
		t.Fatalf("state %v", s.State())
	}

	// StopIndications, then StartHeld: live only at Release.
	s.Servicing().StopIndications()
	send(1)
	must(t, s.Servicing().StartHeld())
	quiet(5)
	s.Servicing().Release()
	eventually(t, "the packet after StopIndications and Release", func() bool { return got.Load() == 6 })
}
