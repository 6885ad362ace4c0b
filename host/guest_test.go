package host_test

import (
	"context"
	"errors"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
)

// guests collects the handles Config.OnGuest hands over.
func guestsOf(cfg *host.Config, offer func(g *host.Guest)) chan *host.Guest {
	ch := make(chan *host.Guest, 4)
	cfg.OnGuest = func(g *host.Guest) {
		if offer != nil {
			offer(g)
		}
		ch <- g
	}
	return ch
}

func TestGuestOfferBeforeRequestOffers(t *testing.T) {
	leakcheck.Check(t)
	dyn := newRecording("77777777-0000-0000-0000-000000000000")
	var offered *host.Offered
	cfg := host.Config{Devices: []host.Device{newEchoDevice(nil)}}
	gs := guestsOf(&cfg, func(g *host.Guest) {
		var err error
		if offered, err = g.Offer(dyn); err != nil {
			t.Error(err)
		}
		if _, err := g.Offer(dyn); !errors.Is(err, host.ErrOfferExists) {
			t.Errorf("duplicate offer: %v", err)
		}
	})
	s := newServed(t, cfg)
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	hg := <-gs
	if hg.ID() == 0 {
		t.Fatal("guest id 0")
	}
	offers := g.offers()
	if len(offers) != 2 || offers[1].ChannelID != 2 || offers[1].InterfaceType != dyn.spec.InterfaceType {
		t.Fatalf("offers %+v", offers)
	}
	if offered.ChannelID() != 2 {
		t.Fatalf("channel id %d", offered.ChannelID())
	}
	// Rescind after the offers went out: RescindChannelOffer, and
	// Rescind returns only once the guest released the id.
	done := make(chan error, 1)
	go func() { done <- offered.Rescind(testCtx(t)) }()
	if r, ok := g.recv().(*protocol.RescindChannelOffer); !ok || r.ChannelID != 2 {
		t.Fatalf("want RescindChannelOffer 2, got %+v", r)
	}
	select {
	case err := <-done:
		t.Fatalf("Rescind returned before RelIdReleased: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	g.send(&protocol.RelIDReleased{ChannelID: 2})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The id is free again: a new offer takes it, sent live.
	o2, err := hg.Offer(dyn)
	if err != nil {
		t.Fatal(err)
	}
	if oc, ok := g.recv().(*protocol.OfferChannel); !ok || oc.ChannelID != 2 || o2.ChannelID() != 2 {
		t.Fatalf("want live OfferChannel 2, got %+v", oc)
	}
}

func TestGuestOfferRescindBeforeOffers(t *testing.T) {
	leakcheck.Check(t)
	dyn := newRecording("77777777-0000-0000-0000-000000000000")
	cfg := host.Config{}
	gs := guestsOf(&cfg, nil)
	s := newServed(t, cfg)
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	hg := <-gs
	o, err := hg.Offer(dyn)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Rescind(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if offers := g.offers(); len(offers) != 0 {
		t.Fatalf("rescinded offer still listed: %+v", offers)
	}
	if err := o.Rescind(testCtx(t)); err != nil {
		t.Fatalf("second Rescind: %v", err)
	}
}

func TestGuestOfferLiveOpenRescind(t *testing.T) {
	leakcheck.Check(t)
	cfg := host.Config{}
	gs := guestsOf(&cfg, nil)
	s := newServed(t, cfg)
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	if _, err := cl.RequestOffers(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	hg := <-gs
	o, err := hg.Offer(newEchoDevice(nil))
	if err != nil {
		t.Fatal(err)
	}
	off, err := cl.WaitOffer(testCtx(t), echoType, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cl.Open(testCtx(t), off, guest.OpenOptions{OutPages: 2, InPages: 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.Rescind(testCtx(t)) }()
	select {
	case <-ch.Rescinded():
	case <-time.After(5 * time.Second):
		t.Fatal("guest channel not told of the rescind")
	}
	if err := ch.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestGuestOfferAfterDisconnect(t *testing.T) {
	leakcheck.Check(t)
	cfg := host.Config{}
	gs := guestsOf(&cfg, nil)
	s := newServed(t, cfg)
	cl := s.Connect(t, guest.Config{MemorySize: 1 << 20})
	hg := <-gs
	o, err := hg.Offer(newEchoDevice(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RequestOffers(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	<-hg.Done()
	if _, err := hg.Offer(newEchoDevice(nil)); !errors.Is(err, host.ErrGuestGone) {
		t.Fatalf("offer to a gone guest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := o.Rescind(ctx); err != nil {
		t.Fatalf("Rescind after disconnect: %v", err)
	}
}

func TestGpadlMarkReadOnly(t *testing.T) {
	leakcheck.Check(t)
	d := &mappingDevice{recordingDevice: newRecording("55555555-0000-0000-0000-000000000000"), mapped: make(chan *host.Channel, 1)}
	s := newServed(t, host.Config{Devices: []host.Device{d}})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	ch := g.offers()[0].ChannelID
	if st := g.createGpadl(ch, 1, pagesRange(0, 4)); st != 0 {
		t.Fatal(st)
	}
	if st := g.createGpadl(ch, 2, pagesRange(8, 1)); st != 0 {
		t.Fatal(st)
	}
	formatRings(g.mem.Bytes())
	if st := g.open(&protocol.OpenChannel{ChannelID: ch, RingGpadlID: 1, DownstreamRingPageOffset: 2}); st != 0 {
		t.Fatal(st)
	}
	hc := <-d.mapped
	if err := hc.Gpadls.MarkReadOnly(99); !errors.Is(err, host.ErrNoGpadl) {
		t.Fatalf("mark unknown: %v", err)
	}
	if err := hc.Gpadls.MarkReadOnly(2); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Gpadls.Map(2, guestmem.ReadWrite); !errors.Is(err, host.ErrGpadlReadOnly) {
		t.Fatalf("writable map of a read-only GPADL: %v", err)
	}
	v, err := hc.Gpadls.Map(2, guestmem.ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteAt([]byte{1}, 0); !errors.Is(err, guestmem.ErrReadOnly) {
		t.Fatalf("write through read-only view: %v", err)
	}
	if err := hc.Gpadls.Unmap(2); err != nil {
		t.Fatal(err)
	}
}

// formatRings lays out a 2-page ring at PFN 0 and another at PFN 2.
func formatRings(mem []byte) {
	ring.Format(mem[0:2*4096], true)
	ring.Format(mem[2*4096:4*4096], true)
}
