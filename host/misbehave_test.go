package host_test

import (
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// createGpadl sends a GPADL of pages [pfn, pfn+n) and returns the status.
func (g *rawGuest) createGpadl(ch, id uint32, r gpa.Range) uint32 {
	g.t.Helper()
	msgs, err := protocol.NewGpadlMessages(ch, id, []gpa.Range{r})
	if err != nil {
		g.t.Fatal(err)
	}
	for _, m := range msgs {
		g.send(m)
	}
	gc, ok := g.recv().(*protocol.GpadlCreated)
	if !ok || gc.GpadlID != id {
		g.t.Fatalf("want GpadlCreated for %#x, got %+v", id, gc)
	}
	return gc.Status
}

func pagesRange(pfn uint64, n int) gpa.Range {
	r := gpa.Range{ByteCount: uint32(n * 4096)}
	for i := range n {
		r.PFNs = append(r.PFNs, pfn+uint64(i))
	}
	return r
}

func (g *rawGuest) open(m *protocol.OpenChannel) uint32 {
	g.t.Helper()
	for _, dir := range []transport.Direction{transport.ToHost, transport.ToGuest} {
		e, err := transport.NewEvent()
		if err != nil {
			g.t.Fatal(err)
		}
		if err := g.c.SendEvent(m.ChannelID, dir, e); err != nil {
			g.t.Fatal(err)
		}
		e.Close()
	}
	g.send(m)
	r, ok := g.recv().(*protocol.OpenChannelResult)
	if !ok || r.ChannelID != m.ChannelID {
		g.t.Fatalf("want OpenChannelResult, got %+v", r)
	}
	return r.Status
}

func TestMalformedAndOutOfOrder(t *testing.T) {
	leakcheck.Check(t)
	d := newRecording("44444444-0000-0000-0000-000000000000")
	s := newServed(t, host.Config{Devices: []host.Device{d}})
	g := s.raw(t, 1<<20)

	// Before contact: everything but InitiateContact is dropped.
	g.send(&protocol.RequestOffers{})
	g.send(&protocol.GpadlBody{GpadlID: 1, Data: []uint64{1}})
	g.sendBytes([]byte{1, 2, 3})
	g.sendBytes(make([]byte, 240))
	g.quiet()
	g.contact(protocol.VersionWin10)
	g.send(&protocol.InitiateContact{VersionRequested: protocol.VersionWin10}) // second contact: dropped
	g.quiet()
	// OpenChannel before offers: the channel is unknown.
	if st := g.open(&protocol.OpenChannel{ChannelID: 1, RingGpadlID: 5, DownstreamRingPageOffset: 2}); st == 0 {
		t.Fatal("open before offers succeeded")
	}
	offers := g.offers()
	if len(offers) != 1 {
		t.Fatalf("%d offers", len(offers))
	}
	ch := offers[0].ChannelID

	// GPADL troubles: a failure status each, the guest stays.
	g.send(&protocol.GpadlBody{GpadlID: 77, Data: []uint64{1}}) // body before header: dropped
	g.quiet()
	if st := g.createGpadl(ch+1, 1, pagesRange(0, 1)); st == 0 {
		t.Fatal("GPADL on unknown channel accepted")
	}
	if st := g.createGpadl(ch, 2, gpa.Range{ByteCount: 4096, PFNs: []uint64{256}}); st == 0 {
		t.Fatal("GPADL outside memory accepted")
	}
	g.send(&protocol.GpadlHeader{ChannelID: ch, GpadlID: 3, RangeBufferLen: 8, RangeCount: 1, Data: []uint64{4096}})
	if c := g.recv().(*protocol.GpadlCreated); c.Status == 0 {
		t.Fatal("bad counts accepted")
	}
	// Ring GPADL of 8 pages, then bad opens.
	if st := g.createGpadl(ch, 10, pagesRange(16, 8)); st != 0 {
		t.Fatalf("ring GPADL status %#x", st)
	}
	if st := g.createGpadl(ch, 10, pagesRange(40, 1)); st == 0 {
		t.Fatal("duplicate GPADL id accepted")
	}
	mem := g.mem.Bytes()
	ring.Format(mem[16*4096:20*4096], true)
	ring.Format(mem[20*4096:24*4096], true)
	for _, tc := range []struct {
		name string
		m    protocol.OpenChannel
	}{
		{"unknown channel", protocol.OpenChannel{ChannelID: 99, RingGpadlID: 10, DownstreamRingPageOffset: 4}},
		{"unknown gpadl", protocol.OpenChannel{ChannelID: ch, RingGpadlID: 11, DownstreamRingPageOffset: 4}},
		{"offset 0", protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 0}},
		{"offset at end", protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 8}},
		{"offset past end", protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 1 << 30}},
		{"extended form", protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4, Extended: true}},
	} {
		if st := g.open(&tc.m); st == 0 {
			t.Fatalf("%s: open succeeded", tc.name)
		}
	}
	// Corrupt ring indices: write index beyond the data area.
	mem[16*4096] = 0xff
	mem[16*4096+1] = 0xff
	if st := g.open(&protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st == 0 {
		t.Fatal("corrupt ring accepted")
	}
	ring.Format(mem[16*4096:20*4096], true)
	// A device that refuses.
	d.mu.Lock()
	d.failOpen = errTest
	d.mu.Unlock()
	if st := g.open(&protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st == 0 {
		t.Fatal("device error ignored")
	}
	d.mu.Lock()
	d.failOpen = nil
	d.mu.Unlock()
	// Finally a good open, a bad close, a good close.
	if st := g.open(&protocol.OpenChannel{ChannelID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st != 0 {
		t.Fatalf("good open: status %#x", st)
	}
	g.send(&protocol.CloseChannel{ChannelID: 1234})
	g.send(&protocol.GpadlTeardown{ChannelID: ch, GpadlID: 999})
	g.send(&protocol.RelIDReleased{ChannelID: ch})
	// Teardown of the ring of an open channel waits for the close.
	g.send(&protocol.GpadlTeardown{ChannelID: ch, GpadlID: 10})
	g.quiet()
	g.send(&protocol.CloseChannel{ChannelID: ch})
	if td, ok := g.recv().(*protocol.GpadlTorndown); !ok || td.GpadlID != 10 {
		t.Fatalf("want GpadlTorndown 10, got %+v", td)
	}
	if o, c := d.counts(); o != 1 || c != 1 {
		t.Fatalf("opens %d closes %d", o, c)
	}
	g.send(&protocol.Unload{})
	if _, ok := g.recv().(*protocol.UnloadComplete); !ok {
		t.Fatal("want UnloadComplete")
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("device says no")

// mappingDevice maps GPADL id on open and unmaps when told.
type mappingDevice struct {
	*recordingDevice
	mapped chan *host.Channel
}

func (d *mappingDevice) Open(ch *host.Channel) error {
	if err := d.recordingDevice.Open(ch); err != nil {
		return err
	}
	d.mapped <- ch
	return nil
}

func TestTeardownWaitsForUnmap(t *testing.T) {
	leakcheck.Check(t)
	d := &mappingDevice{recordingDevice: newRecording("55555555-0000-0000-0000-000000000000"), mapped: make(chan *host.Channel, 1)}
	s := newServed(t, host.Config{Devices: []host.Device{d}})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	ch := g.offers()[0].ChannelID
	if st := g.createGpadl(ch, 1, pagesRange(0, 4)); st != 0 {
		t.Fatal(st)
	}
	if st := g.createGpadl(ch, 2, pagesRange(8, 3)); st != 0 {
		t.Fatal(st)
	}
	mem := g.mem.Bytes()
	ring.Format(mem[0:2*4096], true)
	ring.Format(mem[2*4096:4*4096], true)
	if st := g.open(&protocol.OpenChannel{ChannelID: ch, RingGpadlID: 1, DownstreamRingPageOffset: 2}); st != 0 {
		t.Fatal(st)
	}
	hc := <-d.mapped
	v, err := hc.Gpadls.Map(2, guestmem.ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 3*4096 {
		t.Fatalf("view of %d bytes", v.Len())
	}
	if _, err := hc.Gpadls.Map(2, guestmem.ReadOnly); err == nil {
		t.Fatal("second mapping allowed")
	}
	if _, err := hc.Gpadls.Map(1234, guestmem.ReadOnly); err == nil {
		t.Fatal("unknown GPADL mapped")
	}
	g.send(&protocol.GpadlTeardown{ChannelID: ch, GpadlID: 2})
	g.quiet()
	if err := hc.Gpadls.Unmap(2); err != nil {
		t.Fatal(err)
	}
	if td, ok := g.recv().(*protocol.GpadlTorndown); !ok || td.GpadlID != 2 {
		t.Fatalf("want GpadlTorndown 2, got %+v", td)
	}
	if err := hc.Gpadls.Unmap(2); err == nil {
		t.Fatal("double unmap allowed")
	}
	_ = time.Second
}

var _ = echoType
