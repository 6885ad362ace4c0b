package channel

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestTrySend: TrySend writes when the ring has room and nothing is
// queued, refuses (sending nothing) when the ring is full or a packet
// object waits in the send queue, so that packets arrive in the order
// they were sent, and reports a closed channel and an oversized packet.
func TestTrySend(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var mu sync.Mutex
	var held []*Packet
	var seen []string
	var release atomic.Bool
	proc := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		mu.Lock()
		seen = append(seen, string(payload[:8]))
		if !release.Load() {
			held = append(held, p)
			mu.Unlock()
			return
		}
		mu.Unlock()
		p.Complete(nil)
	}
	s := r.newServer(t, proc, StateCallbacks{})
	must(t, s.SetMaxPacketCount(4))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 2))
	if err := c.TrySend([]byte("closed..")); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("TrySend before the channel opened: %v", err)
	}
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	t.Cleanup(func() {
		release.Store(true)
		mu.Lock()
		h := held
		held = nil
		mu.Unlock()
		for _, p := range h {
			p.Complete(nil)
		}
	})
	if err := c.TrySend(make([]byte, MTU)); !errors.Is(err, StatusInvalidBufferSize) {
		t.Fatalf("TrySend past the MTU: %v", err)
	}
	msg := func(i int) []byte { return fmt.Appendf(nil, "%08d%0100d", i, 0) }

	// The server holds four packets and stops reading: the ring fills.
	// Its receive goroutine may take the four only after the ring filled
	// (late to run on a loaded machine): the room that frees let the
	// packet queued below out at once, and the TrySend after it with it
	// (once in 300 runs under -race with two CPU-bound loops beside). So
	// the ring is filled again once the server has read its four and
	// committed the read (its PacketsIn is published at the batch's end,
	// after the commit); it reads nothing more until a completion.
	sent := 0
	fill := func() {
		for {
			err := c.TrySend(msg(sent))
			if errors.Is(err, StatusBufferOverflow) {
				return
			}
			must(t, err)
			if sent++; sent > 1000 {
				t.Fatal("the ring never filled")
			}
		}
	}
	fill()
	eventually(t, "the server's four packets read", func() bool { return s.Stats().PacketsIn == 4 })
	fill()
	// A packet object queues behind the full ring; from now on TrySend
	// refuses even when the ring has room, until the queue is empty.
	p, err := c.AllocatePacket()
	must(t, err)
	p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { p.Free() })
	must(t, p.Send(msg(sent), 0))
	sent++
	if err := c.TrySend(msg(sent)); !errors.Is(err, StatusBufferOverflow) {
		t.Fatalf("TrySend with a packet queued: %v", err)
	}
	release.Store(true)
	mu.Lock()
	h := held
	held = nil
	mu.Unlock()
	for _, p := range h {
		p.Complete(nil)
	}
	eventually(t, "the queue flushed", func() bool { return c.TrySend(msg(sent)) == nil })
	sent++
	var want []string
	for i := range sent {
		want = append(want, string(msg(i)[:8]))
	}
	eventually(t, "every packet", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == sent })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, want) {
		t.Fatalf("packets arrived as %v, want %v", seen, want)
	}
}

// TestTrySendKeepsOrder: with a packet waiting in the send queue, TrySend
// refuses even though the ring has room, so it cannot overtake it.
func TestTrySendKeepsOrder(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	_, c := r.pair(t, ignore, ignore, StateCallbacks{}, StateCallbacks{})
	p, err := c.AllocatePacket()
	must(t, err)
	// Queue p by hand, as send does when the ring is full; without a
	// completion routine it frees itself once written.
	c.sendMu.Lock()
	p.buf = append(p.buf[:0], "queued.."...)
	p.n = len(p.buf)
	p.state = outQueued
	c.enqueue(&p.q)
	c.sendMu.Unlock()
	if err := c.TrySend([]byte("overtake")); !errors.Is(err, StatusBufferOverflow) {
		t.Fatalf("TrySend with a packet queued and room in the ring: %v", err)
	}
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	done, sig := c.flush(ep)
	c.finishSent(ep, done, sig)
	if err := c.TrySend([]byte("after...")); err != nil {
		t.Fatalf("TrySend once the queue is empty: %v", err)
	}
}

// TestTrySendBatch: TrySendBatch writes its payloads in order with one
// commit, stops at the first that cannot go (past the MTU, or the ring
// full) saying why and how many went, and those, and only those, arrive.
func TestTrySendBatch(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var mu sync.Mutex
	var held []*Packet
	var seen []string
	var hold atomic.Bool
	proc := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		mu.Lock()
		seen = append(seen, string(payload[:8]))
		if hold.Load() {
			held = append(held, p)
			mu.Unlock()
			return
		}
		mu.Unlock()
		p.Complete(nil)
	}
	releaseHeld := func() {
		hold.Store(false)
		mu.Lock()
		h := held
		held = nil
		mu.Unlock()
		for _, p := range h {
			p.Complete(nil)
		}
	}
	s := r.newServer(t, proc, StateCallbacks{})
	must(t, s.SetMaxPacketCount(4))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 2))
	msg := func(i int) []byte { return fmt.Appendf(nil, "%08d%0100d", i, 0) }
	if n, err := c.TrySendBatch([][]byte{msg(0)}); n != 0 || !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("TrySendBatch before the channel opened: %d, %v", n, err)
	}
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	t.Cleanup(releaseHeld)
	if n, err := c.TrySendBatch(nil); n != 0 || err != nil {
		t.Fatalf("an empty batch: %d, %v", n, err)
	}

	commits := func() uint64 { st := c.Stats(); return st.SignalsSent + st.SignalsSuppressed }
	next := 0
	batch := func(k int) [][]byte {
		var b [][]byte
		for range k {
			b = append(b, msg(next))
			next++
		}
		return b
	}
	before := commits()
	if n, err := c.TrySendBatch(batch(5)); n != 5 || err != nil {
		t.Fatalf("a batch of 5: %d, %v", n, err)
	}
	if d := commits() - before; d != 1 {
		t.Fatalf("a batch of 5 committed %d times, want once", d)
	}
	eventually(t, "the batch read", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == next })

	// One past the MTU in the middle: the two before it go, nothing after.
	b := batch(2)
	b = append(b, make([]byte, MTU), msg(next))
	if n, err := c.TrySendBatch(b); n != 2 || !errors.Is(err, StatusInvalidBufferSize) {
		t.Fatalf("a batch with a packet past the MTU third: %d, %v; want 2, StatusInvalidBufferSize", n, err)
	}
	eventually(t, "the two before it read", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == next })

	// The server holds four packets and reads no more: a batch larger
	// than the ring stops where the ring is full.
	hold.Store(true)
	sentBefore := next
	big := batch(1000)
	n, err := c.TrySendBatch(big)
	if !errors.Is(err, StatusBufferOverflow) || n == 0 || n == len(big) {
		t.Fatalf("a batch larger than the ring: %d of %d, %v; want some, and StatusBufferOverflow", n, len(big), err)
	}
	next = sentBefore + n
	releaseHeld()
	eventually(t, "the batch's first packets read", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == next })
	must(t, c.TrySend(msg(next)))
	next++
	eventually(t, "every packet", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == next })
	mu.Lock()
	defer mu.Unlock()
	var want []string
	for i := range next {
		want = append(want, string(msg(i)[:8]))
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("packets arrived as %v, want %v", seen, want)
	}
}
