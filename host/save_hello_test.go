package host_test

import (
	"encoding/binary"
	"os"
	"syscall"
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/transport"
)

// TestServiceBeforeHello saves a guest whose transport hello the host has
// not received yet (it connected a moment before the save): the hello is
// still in the socket, and the successor must take it as the first frame,
// not as a second hello, and then serve the guest as any other.
func TestServiceBeforeHello(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	hf, gf := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
	defer gf.Close()
	hc, err := transport.FromFileBeforeHello(hf, transport.Host)
	hf.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := host.Config{Devices: []host.Device{newRecording("66666666-0000-0000-0000-000000000000")}}
	greeted := make(chan uint64, 2)
	cfg.OnGuest = func(g *host.Guest) { greeted <- g.ID() }
	s := newServed(t, cfg)
	s.Serve(hc)
	testbus.Eventually(t, "the guest at the host", func() bool { return s.Host.NumGuests() > 0 })
	saved := s.Save(t)
	if len(saved) != 1 || !saved[0].HelloPending {
		t.Fatalf("saved %d guests, hello pending %v", len(saved), len(saved) == 1 && saved[0].HelloPending)
	}
	s.Stop()
	h2, _, err := host.Restore(cfg, saved)
	saved[0].Close()
	if err != nil {
		t.Fatal(err)
	}
	s.Host = h2
	h2.Resume()

	// Only now does the guest's hello arrive; the guest speaks on as
	// usual (this host end sends no hello of its own: FromFile).
	hello := []byte{1, 0, 8, 0}
	hello = binary.LittleEndian.AppendUint32(hello, 0x54424D56)
	hello = binary.LittleEndian.AppendUint16(hello, 1)
	hello = append(hello, byte(transport.Guest), 0)
	if _, err := gf.Write(hello); err != nil {
		t.Fatal(err)
	}
	gc, err := transport.FromFile(gf, transport.Guest)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := guest.New(testCtx(t), gc, guest.Config{})
	if err != nil {
		t.Fatalf("guest after the restore: %v", err)
	}
	defer cl.Close()
	offers, err := cl.RequestOffers(testCtx(t))
	if err != nil || len(offers) != 1 {
		t.Fatalf("offers after the restore: %d, %v", len(offers), err)
	}
	if len(greeted) != 1 {
		t.Fatalf("OnGuest ran %d times, want once (in the successor)", len(greeted))
	}
}
