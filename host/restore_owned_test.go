package host_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// TestRestoreOwned restores from files it takes over: a guest that is
// not restored has its files closed, the others' are the restored host's
// (closed with it), a restore leaves nothing for the caller to close, and
// the guests' open channels carry on.
func TestRestoreOwned(t *testing.T) {
	leakcheck.Check(t)
	const n = 4
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	var chans []*guest.Channel
	for range n {
		cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
		o, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := cl.Open(testCtx(t), o, guest.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		echoRoundTrip(t, ch, 5)
		chans = append(chans, ch)
	}
	saved := s.Save(t)
	s.Stop()

	// A copy with one corrupt guest: that guest's files are closed at
	// once, the others' once the host that took them closes.
	bad := make([]host.SavedGuest, len(saved))
	for i := range saved {
		bad[i] = saved[i]
		f, err := saved[i].Conn.Dup()
		if err != nil {
			t.Fatal(err)
		}
		bad[i].Conn = f
		if bad[i].Memory, err = saved[i].Memory.Dup(); err != nil {
			t.Fatal(err)
		}
		bad[i].Events = nil
		for _, e := range saved[i].Events {
			f, err := e.FD.Dup()
			if err != nil {
				t.Fatal(err)
			}
			bad[i].Events = append(bad[i].Events, host.SavedEvent{ChannelID: e.ChannelID, Dir: e.Dir, FD: f})
		}
	}
	kept := make([]host.SavedGuest, len(bad))
	for i := range bad {
		kept[i] = bad[i]
		kept[i].Events = append([]host.SavedEvent(nil), bad[i].Events...)
	}
	bad[2].State = append([]byte(nil), bad[2].State...)
	bad[2].State[len(bad[2].State)/2] ^= 0xff
	hb, gb, err := host.RestoreOwned(cfg, bad)
	if err != nil || len(gb) != n || gb[2] != nil || gb[1] == nil {
		t.Fatalf("restore with guest 2 corrupt: %v, %v", gb, err)
	}
	if isOpen(kept[2].Conn) || isOpen(kept[2].Memory) {
		t.Fatal("guest 2: a file left open by RestoreOwned")
	}
	hb.Close()
	for i := range kept {
		if isOpen(kept[i].Conn) || isOpen(kept[i].Memory) {
			t.Fatalf("guest %d: a file left open", i)
		}
		for _, e := range kept[i].Events {
			if isOpen(e.FD) {
				t.Fatalf("guest %d: an event left open", i)
			}
		}
		if bad[i].Conn.Valid() || bad[i].Memory.Valid() || bad[i].Events != nil {
			t.Fatalf("guest %d: files not cleared", i)
		}
	}

	h2, guests, err := host.RestoreOwned(cfg, saved)
	if err != nil {
		t.Fatal(err)
	}
	s.Host = h2
	if len(guests) != n {
		t.Fatalf("%d guests restored", len(guests))
	}
	for i := range saved {
		if saved[i].Conn.Valid() || saved[i].Memory.Valid() || saved[i].Events != nil {
			t.Fatalf("guest %d: files not cleared", i)
		}
	}
	h2.Resume()
	for _, ch := range chans {
		echoRoundTrip(t, ch, 20)
	}
}

// isOpen reports whether d's descriptor is open. Nothing else in the
// test opens descriptors meanwhile, so a closed number is not reused.
func isOpen(d host.FD) bool {
	_, err := unix.FcntlInt(uintptr(d.Int()), unix.F_GETFD, 0)
	return err == nil
}

// TestRestoreBorrowed restores straight from what SaveGuests returned,
// before the old host closes: Restore and RestoreOwned duplicate the
// borrowed descriptors and leave them to their lender.
func TestRestoreBorrowed(t *testing.T) {
	leakcheck.Check(t)
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	o, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cl.Open(testCtx(t), o, guest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, ch, 5)
	saved, err := s.Host.SaveGuests()
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 || saved[0].Conn.Owned() || saved[0].Memory.Owned() || len(saved[0].Events) != 2 || saved[0].Events[0].FD.Owned() {
		t.Fatalf("saved %+v: want one guest of borrowed descriptors", saved)
	}
	conn := saved[0].Conn
	h2, _, err := host.RestoreOwned(cfg, saved)
	if err != nil {
		t.Fatal(err)
	}
	if !isOpen(conn) {
		t.Fatal("RestoreOwned closed a borrowed descriptor")
	}
	s.Stop()
	s.Host = h2
	h2.Resume()
	echoRoundTrip(t, ch, 20)
}
