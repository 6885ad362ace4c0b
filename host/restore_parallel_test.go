package host_test

import (
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

// TestRestoreManyGuests restores several guests at once: they come back
// in the order saved with increasing ids, and one bad state leaves that
// guest out (nil in its place) and no other.
func TestRestoreManyGuests(t *testing.T) {
	leakcheck.Check(t)
	const n = 12
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	for range n {
		cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
		if _, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{}); err != nil {
			t.Fatal(err)
		}
	}
	saved := s.Save(t)
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	if len(saved) != n {
		t.Fatalf("%d guests saved, want %d", len(saved), n)
	}
	s.Stop()

	bad := append([]host.SavedGuest(nil), saved...)
	bad[7].State = append([]byte(nil), bad[7].State...)
	bad[7].State[len(bad[7].State)/2] ^= 0xff
	hb, gb, err := host.Restore(cfg, bad)
	if err != nil {
		t.Fatalf("restore with guest 7 corrupt: %v", err)
	}
	for i, g := range gb {
		if (g == nil) != (i == 7) {
			t.Fatalf("restore with guest 7 corrupt: guest %d restored: %v", i, g != nil)
		}
	}
	hb.Close()

	h2, guests, err := host.Restore(cfg, saved)
	if err != nil {
		t.Fatal(err)
	}
	s.Host = h2
	if len(guests) != n {
		t.Fatalf("%d guests restored, want %d", len(guests), n)
	}
	for i := 1; i < n; i++ {
		if guests[i].ID() <= guests[i-1].ID() {
			t.Fatalf("guest ids %d then %d", guests[i-1].ID(), guests[i].ID())
		}
	}
	h2.Resume()
}
