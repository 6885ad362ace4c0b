package channel

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/ring"
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

	s.Servicing().StopIndications()
	s.Servicing().StopIndications() // twice is once
	send(2)
	time.Sleep(30 * time.Millisecond)
	if got.Load() != 1 {
		t.Fatalf("%d packets indicated after StopIndications, want none", got.Load()-1)
	}
	must(t, s.Pause())
	if got, want := srec.String(), "Opened,Started,PostStarted,Suspend"; got != want {
		t.Fatalf("callbacks %s, want %s", got, want)
	}
	s.Servicing().StopIndications() // paused: nothing to do
	must(t, s.Start())
	eventually(t, "the packets sent while stopped", func() bool { return got.Load() == 3 })

	srec.reset()
	s.Servicing().StopIndications()
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
			s.Servicing().StopIndications()
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

// TestStopIndicationsUnderStream: under a stream of packets, no packet
// sent after StopIndications returned is indicated before Start, over
// many stops; and every packet is indicated once in the end.
func TestStopIndicationsUnderStream(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var after atomic.Uint64 // packets from this sequence number on were sent after the stop returned; 0: none
	var late atomic.Uint64  // such a packet, indicated
	var indicated atomic.Uint64
	process := func(_ *Channel, p *Packet, b []byte, _ PacketFlags) {
		seq := binary.LittleEndian.Uint64(b)
		if a := after.Load(); a != 0 && seq >= a {
			late.CompareAndSwap(0, seq)
		}
		indicated.Add(1)
		p.Complete(nil)
	}
	s, c := r.pair(t, process, ignore, StateCallbacks{}, StateCallbacks{})
	seq := uint64(1)
	send := func(n int) {
		t.Helper()
		var b [8]byte
		deadline := time.Now().Add(5 * time.Second)
		for range n {
			binary.LittleEndian.PutUint64(b[:], seq)
			for c.TrySend(b[:]) != nil { // the ring is full: the server is stopped, or behind
				if time.Now().After(deadline) {
					t.Fatalf("packet %d not sent in 5 s", seq)
				}
				time.Sleep(10 * time.Microsecond)
			}
			seq++
		}
	}
	const rounds = 300
	for range rounds {
		send(64)
		s.Servicing().StopIndications()
		after.Store(seq)
		send(16)
		time.Sleep(200 * time.Microsecond)
		if l := late.Load(); l != 0 {
			t.Fatalf("packet %d, sent after StopIndications returned, was indicated", l)
		}
		after.Store(0)
		must(t, s.Start())
		// The next round starts on a server that runs: one started and
		// stopped again before its receive goroutine woke up would
		// read nothing, and the ring would fill over the rounds.
		want := seq - 1
		eventually(t, "every packet indicated", func() bool { return indicated.Load() == want })
	}
}

// TestStopIndicationsDuringRead puts a StopIndications, and a packet sent
// after it returned, between the receive loop's last look at the flag
// before a read and the read itself: the packet is read but goes back to
// the ring unindicated, and Start indicates it.
func TestStopIndicationsDuringRead(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var got atomic.Int32
	process := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { got.Add(1); p.Complete(nil) }
	s, c := r.pair(t, process, ignore, StateCallbacks{}, StateCallbacks{})
	sendBytes(t, c, 1)
	eventually(t, "the first packet", func() bool { return got.Load() == 1 })

	var fired atomic.Bool
	sent := make(chan error, 1)
	hook := func(ch *Channel) {
		if ch != s || !fired.CompareAndSwap(false, true) {
			return
		}
		s.Servicing().StopIndications()
		sent <- c.TrySend([]byte("late"))
	}
	testHookBeforeRead.Store(&hook)
	defer testHookBeforeRead.Store(nil)
	// Wake the loop with its ring empty: the hook's packet is the one
	// its read finds.
	eventually(t, "the receive goroutine asleep", s.rxSleeping.Load)
	s.ep.in.Signal() //nolint:errcheck // the channel is open
	select {
	case err := <-sent:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the hook did not run")
	}
	time.Sleep(30 * time.Millisecond)
	if n := got.Load(); n != 1 {
		t.Fatalf("%d packets indicated after StopIndications, want none", n-1)
	}
	must(t, s.Start())
	eventually(t, "the packet, after Start", func() bool { return got.Load() == 2 })
}

// TestStartAfterStopIndicationsSignalsOwed: a server whose packets are
// stopped holds back its signals to the guest, and Start right after
// StopIndications gives the one owed: here for the completions that
// waited for room and were written as the guest freed it, after the stop.
func TestStartAfterStopIndicationsSignalsOwed(t *testing.T) {
	leakcheck.Check(t)
	const requests = 60 // a one-page ring holds 46 completions
	s := newSvc(t)
	s.server = configure(t, s.Guest, newVSP(), echo)
	must(t, s.server.SetMaxPacketCount(requests))
	must(t, s.server.Enable())
	must(t, s.server.Start())
	g := openFullGuest(t, s, 2)
	defer g.close()
	g.send(t, 1, requests)
	eventually(t, "completions queued behind the full ring", func() bool {
		return s.server.Stats().PacketsIn == requests && s.server.sendQueued()
	})

	s.server.Servicing().StopIndications()
	// The guest empties its ring and signals (the server waits for the
	// room): the server writes the rest, into a ring the guest is not
	// reading, and holds back the signal while its packets are stopped.
	n := g.read(t)
	eventually(t, "the queued completions written", func() bool { return !s.server.sendQueued() })
	eventually(t, "the receive goroutine asleep again", s.server.rxSleeping.Load)
	if c, err := ring.Inspect(g.ch.In); err != nil || c.WriteIndex == c.ReadIndex || c.InterruptMask != 0 {
		t.Fatalf("guest's ring %+v (%v): want unread completions and the guest waiting for a signal", c, err)
	}
	// The guest never waited: forget the signals of before the stop.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	g.ch.FromHost.Wait(ctx) //nolint:errcheck // a timeout means there were none
	cancel()
	must(t, s.server.Start())
	// Start gave the signal before it returned: the wait finds it at once.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ch.FromHost.Wait(ctx); err != nil {
		t.Fatalf("no signal for the %d completions written while stopped: %v", requests-n, err)
	}
	if m := g.read(t); n+m != requests {
		t.Fatalf("%d completions read, want %d", n+m, requests)
	}
}
