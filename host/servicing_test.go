package host_test

import (
	"bytes"
	"errors"
	"flag"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/savedstate"
)

// service saves s's host, closes it without a word to the guests,
// restores a successor from duplicated files and resumes it. It returns
// the saved states.
func service(t *testing.T, s *served, cfg host.Config) [][]byte {
	t.Helper()
	saved := s.Save(t)
	s.Stop()
	h2, guests, err := host.Restore(cfg, saved)
	var states [][]byte
	for i := range saved {
		states = append(states, saved[i].State)
		saved[i].Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(guests) != len(saved) {
		t.Fatalf("%d guests restored of %d", len(guests), len(saved))
	}
	s.Host = h2
	h2.Resume()
	// A second save of the restored host must give the same records.
	return states
}

// sameRecords compares two states record by record (the save ids differ).
func sameRecords(t *testing.T, a, b []byte) {
	t.Helper()
	_, ra, err := savedstate.Parse(a, savedstate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, rb, err := savedstate.Parse(b, savedstate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ra) != len(rb) {
		t.Fatalf("%d records, then %d", len(ra), len(rb))
	}
	for i := range ra {
		if ra[i].Kind != rb[i].Kind || !bytes.Equal(ra[i].Body, rb[i].Body) {
			t.Fatalf("record %d (%v) differs", i+1, savedstate.KindName(ra[i].Kind))
		}
	}
}

func TestServiceEchoMidTraffic(t *testing.T) {
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
	echoRoundTrip(t, ch, 50)
	states := service(t, s, cfg)
	echoRoundTrip(t, ch, 50)
	// Save the successor too: the same records.
	again, err := s.Host.SaveGuests()
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, states[0], again[0].State)
	for i := range again {
		again[i].Close()
	}
	s.Host.Close()
}

// TestServiceMoments lands a save at each moment of the control plane and
// checks that the guest hears nothing it did not ask for, and continues.
func TestServiceMoments(t *testing.T) {
	dev := func() *recordingDevice { return newRecording("33333333-0000-0000-0000-000000000000") }
	type env struct {
		s   *served
		g   *rawGuest
		cfg host.Config
	}
	setup := func(t *testing.T) *env {
		d := dev()
		cfg := host.Config{Devices: []host.Device{d}}
		s := newServed(t, cfg)
		g := s.raw(t, 1<<20)
		deadline := time.Now().Add(5 * time.Second)
		for s.Host.NumGuests() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return &env{s: s, g: g, cfg: cfg}
	}
	openRing := func(t *testing.T, e *env, ch uint32) {
		if st := e.g.createGpadl(ch, 10, pagesRange(16, 8)); st != 0 {
			t.Fatalf("ring GPADL status %#x", st)
		}
		mem := e.g.mem.Bytes()
		ring.Format(mem[16*4096:20*4096], true)
		ring.Format(mem[20*4096:24*4096], true)
		if st := e.g.open(&protocol.OpenChannel{ChannelID: ch, OpenID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st != 0 {
			t.Fatalf("open status %#x", st)
		}
	}
	t.Run("no channels offered yet", func(t *testing.T) {
		// Devices offered per guest at run time (OnGuest) may not exist
		// yet when a save lands: the bus state then has no channels.
		cfg := host.Config{}
		s := newServed(t, cfg)
		g := s.raw(t, 1<<20)
		deadline := time.Now().Add(5 * time.Second)
		for s.Host.NumGuests() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		g.contact(protocol.VersionWin10)
		service(t, s, cfg)
		g.quiet()
		if n := len(g.offers()); n != 0 {
			t.Fatalf("%d offers from a host with no devices", n)
		}
	})
	t.Run("before contact", func(t *testing.T) {
		e := setup(t)
		service(t, e.s, e.cfg)
		e.g.quiet()
		if vr := e.g.contact(protocol.VersionWin10); !vr.VersionSupported {
			t.Fatal("contact refused")
		}
		if n := len(e.g.offers()); n != 1 {
			t.Fatalf("%d offers", n)
		}
	})
	t.Run("while connecting", func(t *testing.T) {
		e := setup(t)
		e.g.send(&protocol.InitiateContact{VersionRequested: protocol.VersionWin10, MessageSINT: 2})
		service(t, e.s, e.cfg)
		if _, ok := e.g.recv().(*protocol.VersionResponse); !ok {
			t.Fatal("want one VersionResponse")
		}
		e.g.quiet()
		if n := len(e.g.offers()); n != 1 {
			t.Fatalf("%d offers", n)
		}
	})
	t.Run("contact before RequestOffers", func(t *testing.T) {
		e := setup(t)
		e.g.contact(protocol.VersionCopper)
		service(t, e.s, e.cfg)
		e.g.quiet() // no offers before the guest asks
		if n := len(e.g.offers()); n != 1 {
			t.Fatalf("%d offers", n)
		}
		e.g.send(&protocol.RequestOffers{}) // a second ask is still refused
		e.g.quiet()
	})
	t.Run("channel opening", func(t *testing.T) {
		e := setup(t)
		e.g.contact(protocol.VersionWin10)
		ch := e.g.offers()[0].ChannelID
		openRing(t, e, ch)
		e.g.send(&protocol.CloseChannel{ChannelID: ch})
		// Reopen, with the OpenChannel still in flight at the save.
		if st := e.g.createGpadl(ch, 11, pagesRange(40, 1)); st != 0 {
			t.Fatal(st)
		}
		e.g.quiet()
		service(t, e.s, e.cfg)
		if st := e.g.open(&protocol.OpenChannel{ChannelID: ch, OpenID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st != 0 {
			t.Fatalf("open after service: %#x", st)
		}
		e.g.quiet()
	})
	t.Run("open, then closing", func(t *testing.T) {
		e := setup(t)
		e.g.contact(protocol.VersionWin10)
		ch := e.g.offers()[0].ChannelID
		openRing(t, e, ch)
		d := e.cfg.Devices[0].(*recordingDevice)
		e.g.send(&protocol.CloseChannel{ChannelID: ch})
		service(t, e.s, e.cfg)
		e.g.quiet()
		// Open (or reopen) once more: the ring GPADL is free again.
		if st := e.g.open(&protocol.OpenChannel{ChannelID: ch, OpenID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st != 0 {
			t.Fatalf("reopen: %#x", st)
		}
		if o, _ := d.counts(); o < 2 {
			t.Fatalf("%d opens", o)
		}
	})
	t.Run("GPADL half-sent", func(t *testing.T) {
		e := setup(t)
		e.g.contact(protocol.VersionWin10)
		ch := e.g.offers()[0].ChannelID
		msgs, err := protocol.NewGpadlMessages(ch, 7, []gpa.Range{pagesRange(0, 200)})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) < 3 {
			t.Fatalf("%d messages", len(msgs))
		}
		e.g.send(msgs[0])
		e.g.send(msgs[1])
		e.g.quiet()
		service(t, e.s, e.cfg)
		e.g.quiet()
		for _, m := range msgs[2:] {
			e.g.send(m)
		}
		if c, ok := e.g.recv().(*protocol.GpadlCreated); !ok || c.Status != 0 || c.GpadlID != 7 {
			t.Fatalf("want GpadlCreated ok, got %+v", c)
		}
	})
	t.Run("GPADL tearing down", func(t *testing.T) {
		e := setup(t)
		e.g.contact(protocol.VersionWin10)
		ch := e.g.offers()[0].ChannelID
		openRing(t, e, ch)
		e.g.send(&protocol.GpadlTeardown{ChannelID: ch, GpadlID: 10}) // the open ring: waits
		e.g.quiet()
		service(t, e.s, e.cfg)
		e.g.quiet()
		e.g.send(&protocol.CloseChannel{ChannelID: ch})
		if m, ok := e.g.recv().(*protocol.GpadlTorndown); !ok || m.GpadlID != 10 {
			t.Fatalf("want GpadlTorndown, got %+v", m)
		}
		e.g.quiet() // exactly one
		e.g.send(&protocol.GpadlTeardown{ChannelID: ch, GpadlID: 10})
		e.g.quiet() // unknown now: dropped, no second teardown
	})
}

func TestRestoreRefusesUnsupported(t *testing.T) {
	cfg := host.Config{Devices: []host.Device{newRecording("33333333-0000-0000-0000-000000000000")}}
	s := newServed(t, cfg)
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionCopper)
	saved := s.Save(t)
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	begin, recs, err := savedstate.Parse(saved[0].State, savedstate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	patch := func(off int, val []byte) []byte {
		r := append([]savedstate.Record(nil), recs...)
		body := bytes.Clone(r[0].Body)
		copy(body[off:], val)
		r[0].Body = body
		sv, err := savedstate.NewSaver(begin.Scope, begin.Identity, r)
		if err != nil {
			t.Fatal(err)
		}
		return sv.Bytes()
	}
	for name, state := range map[string][]byte{
		"version":  patch(1, []byte{0x09, 0x00, 0x07, 0x00}), // 7.9
		"features": patch(5, []byte{0x00, 0x01, 0x00, 0x00}),
	} {
		sg := saved[0]
		sg.State = state
		h, guests, err := host.Restore(cfg, []host.SavedGuest{sg})
		if err != nil {
			t.Fatal(err)
		}
		if errs := h.RestoreErrors(); guests[0] != nil || len(errs) != 1 || !errors.Is(errs[0], host.ErrBadState) || !strings.Contains(errs[0].Error(), "does not support") {
			t.Errorf("%s: guest restored: %v; %v", name, guests[0] != nil, errs)
		}
		h.Close()
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestGoldenBusState writes (with -update) a bus state saved with an open
// channel, a GPADL half-sent and a teardown waiting for the open ring;
// state_internal_test.go checks that it still restores.
func TestGoldenBusState(t *testing.T) {
	if !*update {
		t.Skip("only writes the golden file (-update)")
	}
	d := newRecording("33333333-0000-0000-0000-000000000000")
	cfg := host.Config{Devices: []host.Device{d}}
	s := newServed(t, cfg)
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionCopper)
	ch := g.offers()[0].ChannelID
	if st := g.createGpadl(ch, 10, pagesRange(16, 8)); st != 0 {
		t.Fatal(st)
	}
	mem := g.mem.Bytes()
	ring.Format(mem[16*4096:20*4096], true)
	ring.Format(mem[20*4096:24*4096], true)
	if st := g.open(&protocol.OpenChannel{ChannelID: ch, OpenID: ch, RingGpadlID: 10, DownstreamRingPageOffset: 4}); st != 0 {
		t.Fatal(st)
	}
	if st := g.createGpadl(ch, 11, pagesRange(40, 3)); st != 0 {
		t.Fatal(st)
	}
	msgs, err := protocol.NewGpadlMessages(ch, 12, []gpa.Range{pagesRange(100, 200)})
	if err != nil {
		t.Fatal(err)
	}
	g.send(msgs[0])
	g.send(msgs[1])
	g.send(&protocol.GpadlTeardown{ChannelID: ch, GpadlID: 10})
	g.quiet()
	saved := s.Save(t)
	defer saved[0].Close()
	path := filepath.Join("testdata", "golden", "bus-v1.state")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, saved[0].State, 0o644); err != nil {
		t.Fatal(err)
	}
}
