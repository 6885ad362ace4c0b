package channel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/ring"
)

// stallAfter is the tests' bound: the checks are given times, so nothing
// waits for it.
const stallAfter = 2 * time.Second

// stallRig is a live echo server and a guest that drives its rings
// itself (fullGuest), so that it can misbehave.
type stallRig struct {
	s  *svc
	sv *Channel
	g  *fullGuest
	t0 time.Time
	// base is the server's Stats after the rig's round trip.
	base Stats
}

func newStallRig(t *testing.T, inPages, maxCount int) *stallRig {
	t.Helper()
	s := newSvc(t)
	sv := configure(t, s.Guest, newVSP(), echo)
	must(t, sv.SetMaxPacketCount(maxCount))
	s.server = sv
	must(t, sv.Enable())
	must(t, sv.Start())
	g := openFullGuest(t, s, inPages)
	t.Cleanup(g.close)
	// A round trip first: the signal that starts it is the receive
	// loop's last wake-up to come (its wait takes every signal before,
	// such as the channel's own at the start), so once the loop sleeps
	// again it stays asleep until someone signals.
	g.send(t, 1000, 1000)
	eventually(t, "the first completion written", func() bool { return sv.Stats().PacketsOut == 1 })
	g.signalled(t)
	if n := g.read(t); n != 1 {
		t.Fatalf("%d completions, want 1", n)
	}
	asleep(t, sv)
	return &stallRig{s: s, sv: sv, g: g, t0: time.Now(), base: sv.Stats()}
}

// asleep waits until the server's receive loop sleeps on its event.
func asleep(t *testing.T, c *Channel) {
	t.Helper()
	eventually(t, "the receive loop asleep", func() bool { return c.rxSleeping.Load() })
}

// check runs CheckStall at the rig's start plus k bounds.
func (r *stallRig) check(k int, unstick bool) StallCheck {
	return r.sv.CheckStall(r.t0.Add(time.Duration(k)*stallAfter), StallConfig{After: stallAfter, Unstick: unstick})
}

// expect checks twice, a bound apart, that the first check sees nothing
// yet and the second names want.
func (r *stallRig) expect(t *testing.T, want string, unstick bool) StallCheck {
	t.Helper()
	if got := r.check(0, unstick); got.Reason != "" {
		t.Fatalf("first check: stall %q before any bound passed", got.Reason)
	}
	got := r.check(1, unstick)
	if got.Reason != want {
		t.Fatalf("after the bound: stall %q, want %q (in %+v, out %+v)", got.Reason, want, got.In, got.Out)
	}
	if st := r.sv.Stats(); st.Stall != want {
		t.Fatalf("Stats.Stall %q, want %q", st.Stall, want)
	}
	return got
}

// noUnstick checks that a stall not of a lost signal was not signalled.
func noUnstick(t *testing.T, c *Channel, res StallCheck) {
	t.Helper()
	if res.Unstuck || c.Stats().Unstuck != 0 {
		t.Fatalf("%s: signalled (Unstuck %v, counted %d): only a lost signal is", res.Reason, res.Unstuck, c.Stats().Unstuck)
	}
}

// write puts requests first..last in the guest's outgoing ring without
// signalling the host.
func (g *fullGuest) write(t *testing.T, first, last uint64) {
	t.Helper()
	for id := first; id <= last; id++ {
		must(t, g.w.WriteInBand(id, ring.FlagCompletionRequested, guestRequest(id)))
	}
	g.w.Commit()
}

// signalled waits, bounded, for a signal from the host.
func (g *fullGuest) signalled(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.ch.FromHost.Wait(ctx); err != nil {
		t.Fatalf("no signal from the host: %v", err)
	}
}

// TestStallLostSignalIn: a guest that writes a request and withholds the
// signal leaves the server's loop asleep on it: lost-signal, and Unstick
// wakes the loop, which answers.
func TestStallLostSignalIn(t *testing.T) {
	leakcheck.Check(t)
	r := newStallRig(t, 4, 64)
	r.g.write(t, 1, 1)
	res := r.expect(t, StallLostSignal, false)
	if st := r.sv.Stats(); st.PacketsIn != r.base.PacketsIn {
		t.Fatalf("the server read %d packets it was not told of", st.PacketsIn-r.base.PacketsIn)
	}
	if res.In.WriteIndex == res.In.ReadIndex {
		t.Fatalf("incoming indices %+v: want the unread request between them", res.In)
	}
	res = r.check(2, true)
	if res.Reason != StallLostSignal || !res.Unstuck {
		t.Fatalf("unstick check: %q, unstuck %v", res.Reason, res.Unstuck)
	}
	eventually(t, "the request answered after the unstick", func() bool { return r.sv.Stats().PacketsOut == r.base.PacketsOut+1 })
	asleep(t, r.sv)
	r.g.signalled(t)
	if n := r.g.read(t); n != 1 {
		t.Fatalf("%d completions, want 1", n)
	}
	if res := r.check(3, true); res.Reason != "" || res.Prev != StallLostSignal {
		t.Fatalf("after the recovery: stall %q (prev %q)", res.Reason, res.Prev)
	}
	if st := r.sv.Stats(); st.Unstuck != 1 || st.Stall != "" {
		t.Fatalf("Stats: unstuck %d stall %q, want 1 and none", st.Unstuck, st.Stall)
	}
}

// TestStallLostSignalOut: a guest that masks interrupts, gets a
// completion while masked (so the server, rightly, does not signal) and
// unmasks without looking at its ring again sleeps on the completion:
// lost-signal on the outgoing ring, and Unstick signals the guest.
func TestStallLostSignalOut(t *testing.T) {
	leakcheck.Check(t)
	r := newStallRig(t, 4, 64)
	r.g.r.DisableInterrupts()
	r.g.send(t, 1, 1)
	eventually(t, "the completion written", func() bool { return r.sv.Stats().PacketsOut == r.base.PacketsOut+1 })
	if st := r.sv.Stats(); st.SignalsSent != r.base.SignalsSent {
		t.Fatalf("the server signalled a masked guest %d times", st.SignalsSent-r.base.SignalsSent)
	}
	asleep(t, r.sv)
	if more, err := r.g.r.EnableInterrupts(); err != nil || !more {
		t.Fatalf("unmask: more %v, err %v; want the completion waiting", more, err)
	}
	r.expect(t, StallLostSignal, false)
	res := r.check(2, true)
	if !res.Unstuck {
		t.Fatal("lost signal not signalled again")
	}
	r.g.signalled(t)
	if n := r.g.read(t); n != 1 {
		t.Fatalf("%d completions, want 1", n)
	}
	if res := r.check(3, true); res.Reason != "" {
		t.Fatalf("after the guest read: stall %q", res.Reason)
	}
}

// TestStallPeerNotReading: a guest told of a completion (signalled) that
// never reads it: peer-not-reading, which Unstick leaves alone.
func TestStallPeerNotReading(t *testing.T) {
	leakcheck.Check(t)
	r := newStallRig(t, 4, 64)
	r.g.send(t, 1, 1)
	eventually(t, "the completion written", func() bool { return r.sv.Stats().PacketsOut == r.base.PacketsOut+1 })
	r.g.signalled(t)
	res := r.expect(t, StallPeerNotReading, true)
	noUnstick(t, r.sv, res)
	if u, _ := res.Out.Unread(); u == 0 {
		t.Fatalf("outgoing ring %+v: want the completion unread", res.Out)
	}
}

// TestStallPendingSendIgnored: a guest that reads the completions the
// server queued behind its full ring but ignores the server's pending
// send size (no signal) leaves them queued: pending-send-ignored, which
// Unstick leaves alone.
func TestStallPendingSendIgnored(t *testing.T) {
	leakcheck.Check(t)
	const requests = 100
	r := newStallRig(t, 2, requests)
	r.g.send(t, 1, requests)
	eventually(t, "the requests read and the ring full", func() bool {
		st := r.sv.Stats()
		return st.PacketsIn == r.base.PacketsIn+requests && st.Queued > 0 && r.sv.Outstanding() == 0
	})
	asleep(t, r.sv)
	var p ring.Packet
	n := 0
	for {
		err := r.g.r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			break
		}
		must(t, err)
		n++
	}
	r.g.r.Commit() // and no signal, whatever it says
	if n == 0 || n == requests {
		t.Fatalf("the guest read %d completions: want a full ring's worth, not all %d", n, requests)
	}
	res := r.expect(t, StallPendingSendIgnored, true)
	noUnstick(t, r.sv, res)
	if !res.Out.PendingSendMet() {
		t.Fatalf("outgoing ring %+v: want its pending send size met", res.Out)
	}
}

// TestStallOwedTransactions: a guest that reads the server's request but
// never completes it owes the transaction: owed-transactions, which
// Unstick leaves alone.
func TestStallOwedTransactions(t *testing.T) {
	leakcheck.Check(t)
	r := newStallRig(t, 4, 64)
	p, err := r.sv.AllocatePacket()
	must(t, err)
	p.SetCompletion(func(*OutPacket, Status, []byte) {})
	must(t, p.Send([]byte("request!"), SendWaitForCompletion))
	r.g.signalled(t)
	var rp ring.Packet
	must(t, r.g.r.Next(&rp))
	r.g.r.Commit()
	if st := r.sv.Stats(); st.CompletionsPending != 1 {
		t.Fatalf("%d completions pending, want 1", st.CompletionsPending)
	}
	res := r.expect(t, StallOwedTransactions, true)
	noUnstick(t, r.sv, res)
}

// TestStallNone: a channel whose guest behaves is never stalled, however
// long apart the checks are.
func TestStallNone(t *testing.T) {
	leakcheck.Check(t)
	r := newStallRig(t, 4, 64)
	for k := range 4 {
		r.g.send(t, uint64(k+1), uint64(k+1))
		eventually(t, "the completion written", func() bool { return r.sv.Stats().PacketsOut == r.base.PacketsOut+uint64(k+1) })
		r.g.signalled(t)
		if n := r.g.read(t); n != 1 {
			t.Fatalf("%d completions, want 1", n)
		}
		asleep(t, r.sv)
		if res := r.check(k, true); res.Reason != "" || res.Unstuck {
			t.Fatalf("check %d: stall %q, unstuck %v", k, res.Reason, res.Unstuck)
		}
	}
}

// TestStallBlockedIsNotLost: packets left in the incoming ring because
// the driver holds every packet object it may have (its packet count)
// are not a lost signal, however long they wait: the loop sleeps until
// a packet is completed, not until the peer signals.
func TestStallBlockedIsNotLost(t *testing.T) {
	leakcheck.Check(t)
	s := newSvc(t)
	held := make(chan *Packet, 1)
	sv := configure(t, s.Guest, newVSP(), func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { held <- p })
	must(t, sv.SetMaxPacketCount(1))
	s.server = sv
	must(t, sv.Enable())
	must(t, sv.Start())
	g := openFullGuest(t, s, 4)
	t.Cleanup(g.close)
	g.send(t, 1, 3)
	p := <-held
	asleep(t, sv)
	r := &stallRig{s: s, sv: sv, g: g, t0: time.Now()}
	var bad []string
	for k := range 3 {
		if res := r.check(k, true); res.Reason != "" || res.Unstuck {
			bad = append(bad, fmt.Sprintf("check %d: stall %q, unstuck %v (in %+v)", k, res.Reason, res.Unstuck, res.In))
		}
	}
	// Every packet completed before the verdict: the channel's close
	// waits for them.
	p.Complete(nil)
	for range 2 {
		(<-held).Complete(nil)
	}
	if bad != nil {
		t.Fatalf("with the driver holding the one packet it may have: %s", strings.Join(bad, "; "))
	}
}

// TestStallPeerPendingSendNotJudged: a guest that leaves a pending send
// size set on its idle outgoing ring for good (as Linux's hv_sock does
// from its open) is no stall: the free space "meets" it forever, and the
// server's reader signals whenever its reads cross it anyway.
func TestStallPeerPendingSendNotJudged(t *testing.T) {
	leakcheck.Check(t)
	r := newStallRig(t, 4, 64)
	pss := (*atomic.Uint32)(unsafe.Pointer(&r.g.ch.Out[ring.PendingSendSizeOffset]))
	pss.Store(1024)
	for k := range 3 {
		if res := r.check(k, true); res.Reason != "" || res.Unstuck {
			t.Fatalf("check %d: stall %q, unstuck %v (in %+v)", k, res.Reason, res.Unstuck, res.In)
		}
	}
}
