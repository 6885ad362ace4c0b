package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// TestGuestThatNeverReadsIsDisconnected: a guest that makes the host
// answer again and again without reading fills its socket. The host's
// send to it gives up after Limits.SendTimeout and disconnects it, and
// another guest is served meanwhile and afterwards.
func TestGuestThatNeverReadsIsDisconnected(t *testing.T) {
	leakcheck.Check(t)
	d := newRecording("44444444-0000-0000-0000-000000000000")
	cfg := host.Config{Devices: []host.Device{d}, Limits: host.Limits{SendTimeout: 200 * time.Millisecond}}
	gs := guestsOf(&cfg, nil)
	s := newServed(t, cfg)
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionWin10)
	bad := <-gs
	ch := g.offers()[0].ChannelID

	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for id := uint32(1); id < 1<<20; id++ {
			msgs, err := protocol.NewGpadlMessages(ch, id, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{1 << 40}}})
			if err != nil {
				return
			}
			if g.c.Send(protocol.Marshal(msgs[0])) != nil {
				return // the host closed the connection
			}
		}
	}()
	select {
	case <-bad.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a guest that never reads was not disconnected within 10 s")
	}
	<-flooded

	// A well-behaved guest is served as usual.
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	o, err := cl.WaitOffer(testCtx(t), d.spec.InterfaceType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Open(testCtx(t), o, guest.OpenOptions{OutPages: 2, InPages: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestRescindWithoutRelease: a guest that never answers a rescind with
// RelIdReleased is disconnected after Limits.ReleaseTimeout, so a
// Rescind without a deadline (a server channel's Disable) returns.
func TestRescindWithoutRelease(t *testing.T) {
	leakcheck.Check(t)
	_, g, hg, offered := offeredGuest(t, 300*time.Millisecond)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- offered.Rescind(context.Background()) }()
	if m, ok := g.recv().(*protocol.RescindChannelOffer); !ok || m.ChannelID != offered.ChannelID() {
		t.Fatalf("want RescindChannelOffer, got %+v", m)
	}
	// The guest says nothing.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Rescind still waits 10 s after a 300 ms release timeout")
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("Rescind returned after %v, before the release timeout", took)
	}
	select {
	case <-hg.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("guest not disconnected")
	}
}

// TestRescindReleasedInTime: a guest that answers within the release
// timeout stays connected.
func TestRescindReleasedInTime(t *testing.T) {
	leakcheck.Check(t)
	_, g, hg, offered := offeredGuest(t, 300*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- offered.Rescind(testCtx(t)) }()
	g.recv()
	g.send(&protocol.RelIDReleased{ChannelID: offered.ChannelID()})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past the timeout
	select {
	case <-hg.Done():
		t.Fatal("a guest that released in time was disconnected")
	default:
	}
	// Still connected: a ModifyChannel of a channel not open is dropped
	// without a word, where a closed connection would fail the receive.
	g.send(&protocol.ModifyChannel{ChannelID: 99})
	g.quiet()
}

// TestSendTimeoutDuringSave: a send to a guest that does not read times
// out while a servicing is saving the guests. The host must not close
// that guest's connection under the save (the guest would be lost, or
// the save fail): it is saved like the others, and the successor meets
// its behaviour and its own bounds.
func TestSendTimeoutDuringSave(t *testing.T) {
	leakcheck.Check(t)
	d := newRecording("44444444-0000-0000-0000-000000000000")
	s := newServed(t, host.Config{Devices: []host.Device{d}, Limits: host.Limits{SendTimeout: 300 * time.Millisecond}})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionWin10)
	ch := g.offers()[0].ChannelID
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for id := uint32(1); id < 1<<20; id++ {
			msgs, err := protocol.NewGpadlMessages(ch, id, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{1 << 40}}})
			if err != nil || g.c.Send(protocol.Marshal(msgs[0])) != nil {
				return
			}
		}
	}()
	time.Sleep(150 * time.Millisecond) // the host is blocked sending now

	saved, err := s.Host.SaveGuests()
	if err != nil {
		t.Fatal(err)
	}
	n := len(saved)
	for i := range saved {
		saved[i].Close()
	}
	if n != 1 {
		t.Fatalf("saved %d guests, want the one whose send timed out during the save", n)
	}
	s.Host.Close()
	g.c.Close()
	<-flooded
}

// TestRestoredRescindTimesOut: a rescind the guest has not answered when
// the host is serviced still times out in the successor (the release
// clock starts again at the restore), and the guest is disconnected.
func TestRestoredRescindTimesOut(t *testing.T) {
	leakcheck.Check(t)
	const timeout = 300 * time.Millisecond
	s, g, _, offered := offeredGuest(t, timeout)
	done := make(chan error, 1)
	go func() { done <- offered.Rescind(context.Background()) }()
	if m, ok := g.recv().(*protocol.RescindChannelOffer); !ok || m.ChannelID != offered.ChannelID() {
		t.Fatalf("want RescindChannelOffer, got %+v", m)
	}
	// The guest says nothing; the host is serviced before the timeout.
	restoring := time.Now() // the restore starts the release clock after this
	service(t, s, host.Config{Limits: host.Limits{ReleaseTimeout: timeout}})
	<-done // the old host's Rescind ends with the old host
	deadline := time.Now().Add(5 * time.Second)
	for s.Host.NumGuests() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("restored guest not disconnected 5 s after a 300 ms release timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(restoring); took < timeout {
		t.Fatalf("disconnected %v after the restore began, before the release timeout", took)
	}
}

// TestSilentConnectionTimesOut: a connection that never negotiates a
// version gives its guest slot back after Limits.ContactTimeout, and a
// guest that negotiates in time stays.
func TestSilentConnectionTimesOut(t *testing.T) {
	leakcheck.Check(t)
	cfg := host.Config{Limits: host.Limits{ContactTimeout: 200 * time.Millisecond}}
	s := newServed(t, cfg)
	s.Pipe(t) // says nothing
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	start := time.Now()
	for s.Host.NumGuests() != 2 && time.Since(start) < 100*time.Millisecond {
		time.Sleep(time.Millisecond) // both connections registered
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Host.NumGuests() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d guests 5 s after a 200 ms contact timeout, want the silent one gone", s.Host.NumGuests())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond) // past the timeout for the one that negotiated
	if n := s.Host.NumGuests(); n != 1 {
		t.Fatalf("%d guests, want the one that negotiated", n)
	}
}

// offeredGuest serves a raw guest, negotiated, to which the host offered
// one channel at run time (Guest.Offer), with the given release timeout.
func offeredGuest(t *testing.T, release time.Duration) (*served, *rawGuest, *host.Guest, *host.Offered) {
	t.Helper()
	dyn := newRecording("77777777-0000-0000-0000-000000000000")
	var offered *host.Offered
	cfg := host.Config{Limits: host.Limits{ReleaseTimeout: release}}
	gs := guestsOf(&cfg, func(g *host.Guest) {
		var err error
		if offered, err = g.Offer(dyn); err != nil {
			t.Error(err)
		}
	})
	s := newServed(t, cfg)
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	hg := <-gs
	if len(g.offers()) != 1 {
		t.Fatal("no offer")
	}
	return s, g, hg, offered
}
