package channel

import (
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestIncomingPoolGrows: an enabled channel starts with a small pool of
// incoming packet objects and grows it as packets stay outstanding, up to
// SetMaxPacketCount and no further.
func TestIncomingPoolGrows(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	const limit = 100
	var mu sync.Mutex
	var held []*Packet
	hold := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		mu.Lock()
		held = append(held, p)
		mu.Unlock()
	}
	s := r.newServer(t, hold, StateCallbacks{})
	must(t, s.SetMaxPacketCount(limit))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	s.mu.Lock()
	initial := len(s.inAll)
	s.mu.Unlock()
	if initial != initialPool {
		t.Fatalf("%d packet objects at Enable, want %d", initial, initialPool)
	}
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	waitState(t, s, StateActive)
	for range limit + 50 {
		p, err := c.AllocatePacket()
		must(t, err)
		must(t, p.Send([]byte("held"), 0))
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}
	eventually(t, "the pool's worth of packets", func() bool { return count() == limit })
	time.Sleep(30 * time.Millisecond)
	if n := count(); n != limit {
		t.Fatalf("%d packets outstanding, the pool holds %d", n, limit)
	}
	s.mu.Lock()
	grown := len(s.inAll)
	s.mu.Unlock()
	if grown != limit {
		t.Fatalf("pool of %d, want %d", grown, limit)
	}
	mu.Lock()
	done := held
	held = nil
	mu.Unlock()
	for _, p := range done {
		p.Complete(nil)
	}
	eventually(t, "the rest", func() bool { return count() == 50 })
	mu.Lock()
	for _, p := range held {
		p.Complete(nil)
	}
	mu.Unlock()
}
