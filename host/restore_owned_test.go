package host_test

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// TestRestoreOwned restores from files it takes over: a failed restore
// closes every one of them, a successful one leaves nothing for the
// caller to close, and the guests' open channels carry on.
func TestRestoreOwned(t *testing.T) {
	leakcheck.Check(t)
	const n = 4
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	s := newServed(t, cfg)
	var chans []*guest.Channel
	for range n {
		cl := s.client(t, guest.Config{MemorySize: 1 << 20})
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
	saved, err := s.h.SaveGuests()
	if err != nil {
		t.Fatal(err)
	}
	s.h.Close()
	s.wg.Wait()

	// A corrupt guest fails the whole restore; the files of a copy are
	// all closed (the Close below finds them closed).
	bad := make([]host.SavedGuest, len(saved))
	for i := range saved {
		bad[i] = saved[i]
		f, err := dupFile(saved[i].Conn)
		if err != nil {
			t.Fatal(err)
		}
		bad[i].Conn = f
		if bad[i].Memory, err = dupFile(saved[i].Memory); err != nil {
			t.Fatal(err)
		}
		bad[i].Events = nil
		for _, e := range saved[i].Events {
			f, err := dupFile(e.File)
			if err != nil {
				t.Fatal(err)
			}
			bad[i].Events = append(bad[i].Events, host.SavedEvent{ChannelID: e.ChannelID, Dir: e.Dir, File: f})
		}
	}
	kept := append([]host.SavedGuest(nil), bad...)
	bad[2].State = append([]byte(nil), bad[2].State...)
	bad[2].State[len(bad[2].State)/2] ^= 0xff
	if _, _, err := host.RestoreOwned(cfg, bad); err == nil || !strings.Contains(err.Error(), "guest 2:") {
		t.Fatalf("restore with guest 2 corrupt: %v", err)
	}
	for i := range kept {
		if kept[i].Conn.Close() == nil || kept[i].Memory.Close() == nil {
			t.Fatalf("guest %d: a file left open by a failed RestoreOwned", i)
		}
		for _, e := range kept[i].Events {
			if e.File.Close() == nil {
				t.Fatalf("guest %d: an event left open by a failed RestoreOwned", i)
			}
		}
		if bad[i].Conn != nil || bad[i].Memory != nil || bad[i].Events != nil {
			t.Fatalf("guest %d: files not cleared", i)
		}
	}

	h2, guests, err := host.RestoreOwned(cfg, saved)
	if err != nil {
		t.Fatal(err)
	}
	s.h = h2
	if len(guests) != n {
		t.Fatalf("%d guests restored", len(guests))
	}
	for i := range saved {
		if saved[i].Conn != nil || saved[i].Memory != nil || saved[i].Events != nil {
			t.Fatalf("guest %d: files not cleared", i)
		}
	}
	h2.Resume()
	for _, ch := range chans {
		echoRoundTrip(t, ch, 20)
	}
}

// dupFile duplicates f's descriptor into a file of its own.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}
