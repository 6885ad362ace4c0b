package host_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
)

func TestVersionMatrix(t *testing.T) {
	leakcheck.Check(t)
	s := newServed(t, host.Config{Devices: []host.Device{newEchoDevice(nil)}})
	for _, v := range protocol.Versions() {
		t.Run(v.String(), func(t *testing.T) {
			g := s.raw(t, 1<<20)
			vr := g.contact(v)
			if !vr.VersionSupported {
				t.Fatalf("%v refused", v)
			}
			if v >= protocol.VersionWin10RS31 && vr.VersionOrConnectionID == 0 {
				t.Fatal("message connection id 0 from 5.0 on")
			}
			if got := v >= protocol.VersionCopper; vr.HasFeatures != got {
				t.Fatalf("HasFeatures = %v", vr.HasFeatures)
			}
			cl := s.Connect(t, guest.Config{Versions: []protocol.Version{v}, MemorySize: 1 << 20, Features: protocol.AllFeatures})
			if cl.Version() != v {
				t.Fatalf("negotiated %v", cl.Version())
			}
			want := protocol.FeatureFlags(0)
			if v >= protocol.VersionCopper {
				want = host.SupportedFeatures
			}
			if cl.Features() != want {
				t.Fatalf("features %v, want %v", cl.Features(), want)
			}
			if err := cl.Unload(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("step down", func(t *testing.T) {
		cl := s.Connect(t, guest.Config{Versions: []protocol.Version{0x00070000, 0x00060001, protocol.VersionWin8}, MemorySize: 1 << 20})
		if cl.Version() != protocol.VersionWin8 {
			t.Fatalf("negotiated %v", cl.Version())
		}
	})
	t.Run("unknown only", func(t *testing.T) {
		c := s.Pipe(t)
		_, err := guest.New(testCtx(t), c, guest.Config{Versions: []protocol.Version{0x00070000, 0x00000001}, MemorySize: 1 << 20})
		if !errors.Is(err, guest.ErrNoVersion) {
			t.Fatalf("err = %v, want ErrNoVersion", err)
		}
	})
	t.Run("copper intersection", func(t *testing.T) {
		g := s.raw(t, 1<<20)
		g.send(&protocol.InitiateContact{VersionRequested: protocol.VersionCopper, Features: protocol.FeaturePauseResume | protocol.FeatureClientID})
		vr := g.recv().(*protocol.VersionResponse)
		if !vr.VersionSupported || vr.SupportedFeatures != host.SupportedFeatures {
			t.Fatalf("%+v", vr)
		}
		// Pause was not granted: dropped, no answer.
		g.send(&protocol.Pause{})
		g.quiet()
	})
}

func TestOffersSortedAndStable(t *testing.T) {
	leakcheck.Check(t)
	a := newRecording("ffffffff-0000-0000-0000-000000000000")
	b := newRecording("00000000-0000-0000-0000-0000000000ff")
	c := newRecording("00000000-0000-0000-0000-0000000000aa")
	s := newServed(t, host.Config{Devices: []host.Device{a, b, c, newEchoDevice(nil)}})
	for range 2 {
		cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
		offers, err := cl.RequestOffers(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(offers) != 4 {
			t.Fatalf("%d offers", len(offers))
		}
		for i, o := range offers {
			if o.ChannelID != uint32(i+1) || o.ConnectionID != protocol.ChannelConnectionID(o.ChannelID, 2, 0) {
				t.Fatalf("offer %d: %+v", i, o)
			}
			if i > 0 && bytes.Compare(offers[i-1].InterfaceType[:], o.InterfaceType[:]) >= 0 {
				t.Fatalf("offers not sorted by type: %v then %v", offers[i-1].InterfaceType, o.InterfaceType)
			}
		}
		if offers[3].InterfaceType != a.spec.InterfaceType {
			t.Fatalf("last offer %v", offers[3].InterfaceType)
		}
		o, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
		if err != nil || o.InterfaceType != echoType {
			t.Fatalf("WaitOffer: %+v %v", o, err)
		}
	}
}

func TestGpadlManyPages(t *testing.T) {
	leakcheck.Check(t)
	s := newServed(t, host.Config{Devices: []host.Device{newEchoDevice(nil)}})
	cl := s.Connect(t, guest.Config{MemorySize: 4 << 20})
	o, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pages := range []int{1, 26, 27, 100, 500} {
		pfn, err := cl.Pages().Alloc(pages)
		if err != nil {
			t.Fatal(err)
		}
		pfns := make([]uint64, pages)
		for i := range pfns {
			// Scattered on purpose: the host must not assume contiguity.
			pfns[i] = pfn + uint64((i*7)%pages)
		}
		id, err := cl.CreateGpadl(testCtx(t), o.ChannelID, []gpa.Range{{ByteCount: uint32(pages*4096 - 100), ByteOffset: 50, PFNs: pfns}})
		if err != nil {
			t.Fatalf("%d pages: %v", pages, err)
		}
		if err := cl.TeardownGpadl(testCtx(t), o.ChannelID, id); err != nil {
			t.Fatal(err)
		}
		cl.Pages().Free(pfn, pages)
	}
	// Outside guest memory: a failure status, and the guest stays connected.
	_, err = cl.CreateGpadl(testCtx(t), o.ChannelID, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{1 << 20}}})
	if err == nil {
		t.Fatal("GPADL outside memory accepted")
	}
}

// echoRoundTrip writes n packets on ch and checks the answers.
func echoRoundTrip(t *testing.T, ch *guest.Channel, n int) {
	t.Helper()
	w, err := ring.NewWriter(ch.Out)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ring.NewReader(ch.In)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var p ring.Packet
	for i := range n {
		payload := bytes.Repeat([]byte{byte(i)}, 8*(1+i%40))
		flags := uint16(0)
		if i%2 == 1 {
			flags = ring.FlagCompletionRequested
		}
		if err := w.WriteInBand(uint64(i), flags, payload); err != nil {
			t.Fatal(err)
		}
		if w.Commit() {
			ch.ToHost.Signal()
		}
		for {
			r.DisableInterrupts()
			err := r.Next(&p)
			if errors.Is(err, ring.ErrEmpty) {
				more, err := r.EnableInterrupts()
				if err != nil {
					t.Fatal(err)
				}
				if !more {
					if err := ch.FromHost.Wait(ctx); err != nil {
						t.Fatalf("packet %d: %v", i, err)
					}
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		wantType := ring.TypeInBand
		if flags != 0 {
			wantType = ring.TypeCompletion
		}
		if p.Type != wantType || p.TransactionID != uint64(i) || !bytes.Equal(p.Payload(), payload) {
			t.Fatalf("packet %d: type %v txid %d len %d", i, p.Type, p.TransactionID, len(p.Payload()))
		}
		if r.Commit() {
			ch.ToHost.Signal()
		}
	}
}

func TestEchoOpenClose(t *testing.T) {
	leakcheck.Check(t)
	s := newServed(t, host.Config{Devices: []host.Device{newEchoDevice(nil)}})
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	o, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	free := cl.Pages().FreePages()
	for round := range 3 {
		ch, err := cl.Open(testCtx(t), o, guest.OpenOptions{OutPages: 2 + round, InPages: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Open(testCtx(t), o, guest.OpenOptions{}); err == nil {
			t.Fatal("second open of an open channel succeeded")
		}
		echoRoundTrip(t, ch, 200)
		if err := ch.Close(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cl.Pages().FreePages(); got != free {
		t.Fatalf("free pages %d, want %d", got, free)
	}
}

func TestDisconnectWithoutClose(t *testing.T) {
	leakcheck.Check(t)
	d := newRecording("22222222-0000-0000-0000-000000000000")
	s := newServed(t, host.Config{Devices: []host.Device{d}})
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	o, err := cl.WaitOffer(testCtx(t), d.spec.InterfaceType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Open(testCtx(t), o, guest.OpenOptions{}); err != nil {
		t.Fatal(err)
	}
	pfn, _ := cl.Pages().Alloc(3)
	if _, err := cl.CreateGpadl(testCtx(t), o.ChannelID, []gpa.Range{{ByteCount: 3 * 4096, PFNs: []uint64{pfn, pfn + 1, pfn + 2}}}); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	select {
	case <-d.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("device not closed after the guest vanished")
	}
	if opens, closes := d.counts(); opens != 1 || closes != 1 {
		t.Fatalf("opens %d closes %d", opens, closes)
	}
}

func TestShutdownRescinds(t *testing.T) {
	leakcheck.Check(t)
	d := newRecording("33333333-0000-0000-0000-000000000000")
	s := newServed(t, host.Config{Devices: []host.Device{d, newEchoDevice(nil)}})
	cl1 := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	cl2 := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	s.Pipe(t) // a guest that never says anything
	o, err := cl1.WaitOffer(testCtx(t), echoType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cl1.Open(testCtx(t), o, guest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl2.RequestOffers(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Guest 1 closes its open channel when told, as a driver would.
	go func() {
		for id := range cl1.Rescinded() {
			if id == ch.Offer.ChannelID {
				ch.Close(context.Background())
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- s.Host.Shutdown(testCtx(t)) }()
	for _, cl := range []*guest.Client{cl2} {
		got := map[uint32]bool{}
		for len(got) < 2 {
			select {
			case id := <-cl.Rescinded():
				got[id] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("rescinds seen: %v", got)
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := cl1.RequestOffers(testCtx(t)); err != nil {
		t.Logf("after shutdown: %v", err)
	}
}

func TestGuestsIsolated(t *testing.T) {
	leakcheck.Check(t)
	s := newServed(t, host.Config{Devices: []host.Device{newEchoDevice(nil)}, Limits: host.Limits{MaxBadMessages: 10}})
	good := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	o, err := good.WaitOffer(testCtx(t), echoType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := good.Open(testCtx(t), o, guest.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := s.raw(t, 1<<20)
	bad.contact(protocol.VersionIron)
	for range 20 {
		if err := bad.c.Send([]byte{0xde, 0xad, 0xbe, 0xef}); err != nil {
			break
		}
	}
	// The bad guest is disconnected...
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bad.c.Recv(ctx, bad.buf); err == nil {
		t.Fatal("bad guest still connected")
	}
	// ...and the good one goes on.
	echoRoundTrip(t, ch, 50)
	if err := ch.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}
