package hvsock

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPortTemplate(t *testing.T) {
	g := ServiceForPort(5000)
	if g.String() != "00001388-facb-11e6-bd58-64006a7986d3" {
		t.Fatalf("ServiceForPort(5000) = %v", g)
	}
	if p, ok := PortOf(g); !ok || p != 5000 {
		t.Fatalf("PortOf = %d, %v", p, ok)
	}
	other := g
	other[15] ^= 1
	if _, ok := PortOf(other); ok {
		t.Fatal("PortOf took a GUID off the template")
	}
	a := Addr{VMID: VMIDParent, ServiceID: g}
	if a.Network() != "hvsock" || a.String() != "a42e7cda-d03f-480c-9cc2-a4de20abb878:00001388-facb-11e6-bd58-64006a7986d3" {
		t.Fatalf("Addr %q %q", a.Network(), a.String())
	}
}

// The TlConnectRequest of DEVICES.md §2.7, byte for byte.
func TestTLConnectRequestBytes(t *testing.T) {
	want := unhex(t, `15 00 00 00 00 00 00 00 00 c0 00 00 cb fa e6 11
		bd 58 64 00 6a 79 86 d3 88 13 00 00 cb fa e6 11
		bd 58 64 00 6a 79 86 d3`)
	got := protocol.Marshal(&protocol.TLConnectRequest{EndpointID: ServiceForPort(0xC000), ServiceID: ServiceForPort(5000)})
	if !bytes.Equal(got, want) {
		t.Fatalf("got\n%x\nwant\n%x", got, want)
	}
}

// The offer answering a guest's connect, against DEVICES.md §2.4 and the
// guest-initiated example of §2.7 (body 48–79), and the host-initiated
// one with is_for_guest_accept.
func TestOfferBytes(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := newRawGuest(t, r.Served, protocol.VersionCopper)
	endpoint := ServiceForPort(0xC000)
	g.send(&protocol.TLConnectRequest{EndpointID: endpoint, ServiceID: svc5000})
	b := g.recvBytes()
	if len(b) != protocol.OfferChannelSize {
		t.Fatalf("%d bytes, want an OfferChannel", len(b))
	}
	body := b[8:]
	if !bytes.Equal(body[0:16], svc5000[:]) || !bytes.Equal(body[16:32], endpoint[:]) {
		t.Fatalf("interface type/instance %x %x", body[0:16], body[16:32])
	}
	want := unhex(t, `11 20 00 00  00 00 00 00  00  00  01 00 00 00
		00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  00 00`)
	if got := body[48:80]; !bytes.Equal(got, want) {
		t.Fatalf("body 48–79:\n%x\nwant\n%x", got, want)
	}
	if !bytes.Equal(body[80:120], make([]byte, 40)) || body[164] != 0 || body[165] != 0 {
		t.Fatalf("rest of the user area not zero: %x", body[80:172])
	}

	// Host-initiated: the guest listens, the host dials.
	gl, err := Listen(r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _ = r.srv.Dial(ctx, r.Guest, svc5000) // nobody accepts: only the offer matters
	o := waitOffer(t, r.Client, func(o guest.Offer) bool { return o.IsHVSockOffer() && o.UserDefined.HVSock().ForGuestAccept })
	if o.InterfaceType != svc5000 || o.Flags != 0x2011 || o.UserDefined.PipeMode() != 0 || o.UserDefined[4] != 1 || o.UserDefined.HVSock().ParameterVersion != 1 {
		t.Fatalf("host-initiated offer %+v", o)
	}
	if _, ok := PortOf(o.InterfaceInstance); !ok {
		t.Fatalf("host endpoint %v not template-shaped", o.InterfaceInstance)
	}
}

func waitOffer(t *testing.T, cl *guest.Client, match func(guest.Offer) bool) guest.Offer {
	t.Helper()
	o, err := cl.WaitOfferMatch(testbus.Context(t), match)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A guest dials a host listener: both ends get a connection with the
// addresses of the two endpoints; the host's Close rescinds the channel
// and the guest's Close then returns without waiting out CloseTimeout.
func TestGuestDialsHost(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	hc := acceptWithin(t, hostAccept(l))
	if hc.RemoteAddr().(Addr).ServiceID != gc.LocalAddr().(Addr).ServiceID || hc.LocalAddr().(Addr).ServiceID != svc5000 ||
		gc.RemoteAddr().(Addr) != (Addr{VMIDParent, svc5000}) || hc.RemoteAddr().(Addr).VMID != GuestVMID(r.Guest.ID()) {
		t.Fatalf("addresses: guest %v→%v, host %v→%v", gc.LocalAddr(), gc.RemoteAddr(), hc.LocalAddr(), hc.RemoteAddr())
	}
	if n := r.srv.connsOf(r.Guest); n != 1 {
		t.Fatalf("%d connections counted, want 1", n)
	}
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- gc.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(CloseTimeout - time.Second):
		t.Fatal("the guest's Close waited for its timeout: no rescind")
	}
	testbus.Eventually(t, "the connection uncounted", func() bool { return r.srv.connsOf(r.Guest) == 0 })
	if err := hc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// The host dials a guest listener.
func TestHostDialsGuest(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	gl, err := Listen(r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := gl.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	hc, err := r.srv.Dial(testbus.Context(t), r.Guest, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	gc := <-accepted
	if gc == nil {
		t.FailNow()
	}
	if gc.LocalAddr().(Addr).ServiceID != svc5000 || gc.RemoteAddr().(Addr).ServiceID != hc.LocalAddr().(Addr).ServiceID {
		t.Fatalf("addresses: guest %v→%v, host %v→%v", gc.LocalAddr(), gc.RemoteAddr(), hc.LocalAddr(), hc.RemoteAddr())
	}
	// Bytes both ways, then both FINs: the host rescinds, the guest's
	// Close returns at once.
	if _, err := hc.Write([]byte("hello guest")); err != nil {
		t.Fatal(err)
	}
	if err := hc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(gc); err != nil || string(got) != "hello guest" {
		t.Fatalf("guest read %q, %v", got, err)
	}
	if _, err := gc.Write([]byte("hello host")); err != nil {
		t.Fatal(err)
	}
	if err := gc.(*Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(hc); err != nil || string(got) != "hello host" {
		t.Fatalf("host read %q, %v", got, err)
	}
	closeWithin(t, gc.(*Conn))
	hc.Close()
	// Close unblocks Accept.
	done := make(chan error, 1)
	go func() { _, err := gl.Accept(); done <- err }()
	gl.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// Without a listener the host refuses: from 4.1 the guest's Dial fails at
// once with ECONNREFUSED (not by the rig context's 10 s deadline, which
// would be a timeout); below 4.1 the host says nothing and Dial ends by its timeout.
func TestRefused(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	_, err := DialContext(testbus.Context(t), r.Client, svc5000)
	var ne net.Error
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, ErrRefused) || !errors.As(err, &ne) || ne.Timeout() {
		t.Fatalf("want connection refused, got %v", err)
	}

	old := newRig(t, Config{}, host.Limits{}, guest.Config{Versions: []protocol.Version{protocol.VersionWin10}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = DialContext(ctx, old.Client, svc5000)
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a timeout at 4.0, got %v", err)
	}
}

// A guest that never opens the offered channel has it rescinded after
// OpenTimeout, and the connection stops counting once it released it.
func TestNotOpenedRescinded(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{OpenTimeout: 50 * time.Millisecond}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := newRawGuest(t, r.Served, protocol.VersionCopper)
	g.send(&protocol.TLConnectRequest{EndpointID: ServiceForPort(2000), ServiceID: svc5000})
	o, ok := g.recv().(*protocol.OfferChannel)
	if !ok {
		t.Fatal("want the offer")
	}
	rc, ok := g.recv().(*protocol.RescindChannelOffer)
	if !ok || rc.ChannelID != o.ChannelID {
		t.Fatalf("want the rescind of %d, got %+v", o.ChannelID, rc)
	}
	g.send(&protocol.RelIDReleased{ChannelID: o.ChannelID})
	testbus.Eventually(t, "no connection counted", func() bool {
		r.srv.mu.Lock()
		defer r.srv.mu.Unlock()
		return len(r.srv.perGuest) == 0
	})
}

// A guest that floods connect requests and never opens the channels gets
// MaxConnsPerGuest offers and refusals for the rest; another guest is
// served meanwhile.
func TestConnectFlood(t *testing.T) {
	leakcheck.Check(t)
	const limit = 4
	r := newRig(t, Config{MaxConnsPerGuest: limit, Backlog: 64}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := newRawGuest(t, r.Served, protocol.VersionCopper)
	offers, refusals := 0, 0
	for i := range 200 {
		g.send(&protocol.TLConnectRequest{EndpointID: ServiceForPort(uint32(10000 + i)), ServiceID: svc5000})
		switch m := g.recv().(type) {
		case *protocol.OfferChannel:
			offers++
		case *protocol.TLConnectRequestResult:
			if m.Status != protocol.StatusConnectionRefused {
				t.Fatalf("status %#x", m.Status)
			}
			refusals++
		default:
			t.Fatalf("unexpected %v", m.Type())
		}
	}
	if offers != limit || refusals != 200-limit {
		t.Fatalf("%d offers, %d refusals; want %d and %d", offers, refusals, limit, 200-limit)
	}
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatalf("the other guest: %v", err)
	}
	hc := acceptWithin(t, hostAccept(l))
	hc.Close()
	gc.Close()
}
