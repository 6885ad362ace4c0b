package channel

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestStopIndications: StopIndications stops a running server's packets
// at once; the Pause that follows finishes the pause (Suspend once), and
// Start after it resumes as after any Pause. Start right after
// StopIndications, without a Pause, lets packets flow again without
// state callbacks: the driver saw no pause.
func TestStopIndications(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var got atomic.Int32
	var srec recorder
	count := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { got.Add(1); p.Complete(nil) }
	s, c := r.pair(t, count, ignore, srec.callbacks(), StateCallbacks{})
	send := func(n int32) { t.Helper(); sendBytes(t, c, n) }
	send(1)
	eventually(t, "the first packet", func() bool { return got.Load() == 1 })

	s.StopIndications()
	s.StopIndications() // twice is once
	send(2)
	time.Sleep(30 * time.Millisecond)
	if got.Load() != 1 {
		t.Fatalf("%d packets indicated after StopIndications, want none", got.Load()-1)
	}
	must(t, s.Pause())
	if got, want := srec.String(), "Opened,Started,PostStarted,Suspend"; got != want {
		t.Fatalf("callbacks %s, want %s", got, want)
	}
	s.StopIndications() // paused: nothing to do
	must(t, s.Start())
	eventually(t, "the packets sent while stopped", func() bool { return got.Load() == 3 })

	srec.reset()
	s.StopIndications()
	send(1)
	time.Sleep(30 * time.Millisecond)
	if got.Load() != 3 {
		t.Fatal("a packet indicated after StopIndications")
	}
	must(t, s.Start())
	eventually(t, "the packet sent while stopped", func() bool { return got.Load() == 4 })
	if srec.String() != "" {
		t.Fatalf("callbacks %s on Start after StopIndications alone, want none", srec.String())
	}
	if s.State() != StateActive {
		t.Fatalf("state %v", s.State())
	}
}

// TestStopIndicationsAsleepNoWakeup: the receive goroutine of an idle
// server, asleep on its event, is not woken to stop (StopIndications) or
// to pause: it counts as parked as it is. Packets flow again after Start.
func TestStopIndicationsAsleepNoWakeup(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var got atomic.Int32
	count := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { got.Add(1); p.Complete(nil) }
	s, c := r.pair(t, count, ignore, StateCallbacks{}, StateCallbacks{})
	send := func() {
		t.Helper()
		p, err := c.AllocatePacket()
		must(t, err)
		must(t, p.Send([]byte("x"), 0))
	}
	for _, stop := range []bool{true, false} {
		want := got.Load() + 1
		send()
		eventually(t, "the packet", func() bool { return got.Load() == want })
		eventually(t, "the receive goroutine asleep", s.rxSleeping.Load)
		before := s.Stats().EmptyWakeups
		if stop {
			s.StopIndications()
		}
		must(t, s.Pause())
		if n := s.Stats().EmptyWakeups - before; n != 0 {
			t.Fatalf("stop %v: %d wake-ups to pause an idle channel", stop, n)
		}
		must(t, s.Start())
		send()
		eventually(t, "a packet after Start", func() bool { return got.Load() == want+1 })
	}
}
