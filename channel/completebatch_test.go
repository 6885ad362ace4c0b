package channel

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestCompletePackets: CompletePackets completes packets that asked for
// no completion and packets that asked for one (whose senders hear it) in
// one call; their objects go back to the pool and carry packets again.
func TestCompletePackets(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	s, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
	for i := range 3 {
		must(t, c.TrySend(fmt.Appendf(nil, "plain%d", i)))
	}
	var completed atomic.Int32
	for _, m := range []string{"want0", "want1"} {
		p, err := c.AllocatePacket()
		must(t, err)
		p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { completed.Add(1); p.Free() })
		must(t, p.Send([]byte(m), 0))
	}
	// Outstanding is exact once the batch has ended: until then it also
	// counts the packet objects the receive loop took ahead.
	eventually(t, "five packets held, five outstanding", func() bool { return h.count() == 5 && s.Outstanding() == 5 })
	s.CompletePackets(h.take())
	if n := s.Outstanding(); n != 0 {
		t.Fatalf("%d outstanding after CompletePackets, want 0", n)
	}
	eventually(t, "the two completions at the sender", func() bool { return completed.Load() == 2 })
	for i := range 3 {
		must(t, c.TrySend(fmt.Appendf(nil, "again%d", i)))
	}
	eventually(t, "three more packets", func() bool { return h.count() == 3 })
	s.CompletePackets(h.take())
}

// TestCompletePacketsRefuses: a packet given twice, or one completed
// already, panics and completes none of the packets given.
func TestCompletePacketsRefuses(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	s, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
	for i := range 3 {
		must(t, c.TrySend(fmt.Appendf(nil, "plain%d", i)))
	}
	eventually(t, "three packets held", func() bool { return h.count() == 3 })
	ps := h.take()
	var failure string
	panics := func(what string, list []*Packet, want int) {
		defer func() {
			switch {
			case recover() == nil:
				failure = fmt.Sprintf("CompletePackets of %s did not panic", what)
			case s.Outstanding() != want:
				failure = fmt.Sprintf("CompletePackets of %s: %d outstanding after the panic, want %d (none completed)", what, s.Outstanding(), want)
			}
		}()
		s.CompletePackets(list)
	}
	panics("a packet twice", []*Packet{ps[0], ps[1], ps[0]}, 3)
	ps[2].Complete(nil)
	if failure == "" {
		panics("a packet completed already", []*Packet{ps[0], ps[1], ps[2]}, 2)
	}
	if failure != "" {
		for _, p := range ps[:2] {
			p.Complete(nil) // else the cleanup waits for them
		}
		t.Fatal(failure)
	}
	s.CompletePackets(ps[:2])
	if n := s.Outstanding(); n != 0 {
		t.Fatalf("%d outstanding, want 0", n)
	}
}

// TestPacketFailStopsBatch: the packets after one the driver failed are
// not indicated, even those of the same batch, for which the receive loop
// holds packet objects already.
func TestPacketFailStopsBatch(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var n atomic.Int32
	s, c := r.pair(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		n.Add(1)
		p.Fail()
	}, ignore, StateCallbacks{}, StateCallbacks{})
	oneBatch(t, s, c, "bad", "more", "more")
	eventually(t, "first packet", func() bool { return n.Load() >= 1 })
	time.Sleep(30 * time.Millisecond)
	if n.Load() != 1 {
		t.Fatalf("%d packets indicated after Fail", n.Load())
	}
	if o := s.Outstanding(); o != 0 {
		t.Fatalf("%d outstanding after the batch, want 0", o)
	}
}

// TestReserveReturned: the packet objects the receive loop takes ahead
// for a batch are back in the pool when the batch ends: none counts as
// outstanding then, and a Pause does not wait for them.
func TestReserveReturned(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var n atomic.Int32
	s, c := r.pair(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		n.Add(1)
		p.Complete(nil)
	}, ignore, StateCallbacks{}, StateCallbacks{})
	oneBatch(t, s, c, "p0", "p1", "p2", "p3", "p4")
	eventually(t, "five packets", func() bool { return n.Load() == 5 })
	eventually(t, "none outstanding", func() bool { return s.Outstanding() == 0 })
	paused := make(chan error, 1)
	go func() { paused <- s.Pause() }()
	select {
	case err := <-paused:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Pause waits with no packet outstanding")
	}
}

// oneBatch sends msgs from c to the server s while s is paused, and
// starts it: s reads them as one batch.
func oneBatch(t *testing.T, s, c *Channel, msgs ...string) {
	t.Helper()
	must(t, s.Pause())
	for _, m := range msgs {
		must(t, c.TrySend([]byte(m)))
	}
	must(t, s.Start())
}

// TestPacketMisuseRecovered: the panics of a misused packet (Complete
// twice of one whose sender asked for a completion, CompletePackets of a
// nil packet or of such a packet twice) leave the channel unlocked and its
// packets as they were: a driver that recovers goes on. The first held
// the channel's lock for ever, so the next call on the channel hung; the
// others completed some of the packets before they panicked.
func TestPacketMisuseRecovered(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	s, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
	var completed atomic.Int32
	for _, m := range []string{"want0", "want1", "want2"} {
		p, err := c.AllocatePacket()
		must(t, err)
		p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { completed.Add(1); p.Free() })
		must(t, p.Send([]byte(m), SendWaitForCompletion))
	}
	eventually(t, "three packets held", func() bool { return h.count() == 3 && s.Outstanding() == 3 })
	ps := h.take()
	t.Cleanup(func() {
		// On a failure, else the rig's Close waits for them.
		for _, p := range ps {
			func() {
				defer func() { recover() }() //nolint:errcheck // completed already
				p.Complete(nil)
			}()
		}
	})
	panics := func(what string, fn func()) {
		t.Helper()
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			fn()
		}()
		select {
		case v := <-done:
			if v == nil {
				t.Fatalf("%s did not panic", what)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still runs after 5 s", what)
		}
	}
	panics("CompletePackets with a nil packet", func() { s.CompletePackets([]*Packet{ps[0], nil}) })
	panics("CompletePackets of a packet twice", func() { s.CompletePackets([]*Packet{ps[0], ps[1], ps[0]}) })
	if n := s.Outstanding(); n != 3 || completed.Load() != 0 {
		t.Fatalf("after the refused CompletePackets: %d outstanding, %d completions; want 3 and none", n, completed.Load())
	}
	ps[2].Complete(nil)
	panics("Complete twice", func() { ps[2].Complete(nil) })
	done := make(chan struct{})
	go func() { s.CompletePackets(ps[:2]); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("CompletePackets after a recovered panic hangs: the channel stayed locked")
	}
	eventually(t, "three completions at the sender", func() bool { return completed.Load() == 3 })
	if n := s.Outstanding(); n != 0 {
		t.Fatalf("%d outstanding, want 0", n)
	}
}
