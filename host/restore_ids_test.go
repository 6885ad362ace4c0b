package host_test

import (
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// TestRestoreKeepsGuestIDs: a restored guest keeps the Guest.ID it had,
// so that a number an operator holds (vmbus admin, a capture filter, an
// hvsock VM id) names the same guest after a servicing, even when a guest
// before it left; a guest that connects after the restore gets a number
// above them all. A saved guest without an id (a state from a release
// that did not carry it), with one another took first, or with one out of
// bounds gets a fresh one instead.
func TestRestoreKeepsGuestIDs(t *testing.T) {
	leakcheck.Check(t)
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	for range 3 {
		cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
		if _, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{}); err != nil {
			t.Fatal(err)
		}
	}
	saved := s.Save(t)
	s.Stop()
	if len(saved) != 3 {
		t.Fatalf("%d guests saved", len(saved))
	}
	// The first guest left before the servicing.
	saved[0].Close()
	saved = saved[1:]
	want := []uint64{saved[0].ID, saved[1].ID}
	if want[0] == 0 || want[1] <= want[0] {
		t.Fatalf("saved ids %v", want)
	}
	rcfg := cfg
	newID := make(chan uint64, 1)
	rcfg.OnGuest = func(g *host.Guest) { newID <- g.ID() }
	guests := s.Restore(t, rcfg, saved)
	for i, g := range guests {
		if g == nil || g.ID() != want[i] {
			t.Fatalf("restored guest %d: %v, want id %d", i, g, want[i])
		}
	}
	s.Host.Resume()
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	if _, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{}); err != nil {
		t.Fatal(err)
	}
	if id := <-newID; id <= want[1] {
		t.Fatalf("a guest after the restore got id %d, want one above %v", id, want)
	}
}

// TestRestoreFreshGuestIDs: saved guests without an id, with one another
// took first, or with one out of bounds get fresh ids above the kept ones.
func TestRestoreFreshGuestIDs(t *testing.T) {
	leakcheck.Check(t)
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	for range 4 {
		s.Connect(t, guest.Config{MemorySize: 1 << 20})
	}
	saved := s.Save(t)
	s.Stop()
	if len(saved) != 4 {
		t.Fatalf("%d guests saved", len(saved))
	}
	saved[0].ID = 7
	saved[1].ID = 0       // a release that did not carry ids
	saved[2].ID = 7       // taken by guest 0
	saved[3].ID = 1 << 62 // out of bounds
	guests := s.Restore(t, cfg, saved)
	got := map[uint64]bool{}
	for i, g := range guests {
		if g == nil {
			t.Fatalf("guest %d not restored", i)
		}
		if i > 0 && (g.ID() <= 7 || g.ID() > 10) || got[g.ID()] {
			t.Errorf("guest %d: id %d", i, g.ID())
		}
		got[g.ID()] = true
	}
	if guests[0].ID() != 7 {
		t.Errorf("guest 0: id %d, want 7", guests[0].ID())
	}
}
