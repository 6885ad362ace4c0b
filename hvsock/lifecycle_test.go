package hvsock

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

// A guest that goes away resets its connections: the host takes their
// channels down and stops counting them.
func TestGuestGoneResets(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The guest's link to the host breaks under it (the guest's process
	// died, as the host sees it); its client must outlive its channels,
	// so it is closed only at the end.
	link := r.Pipe(t)
	other, err := guest.New(testbus.Context(t), link, guest.Config{MemorySize: testbus.DefaultMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	gc, err := DialContext(testbus.Context(t), other, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer closeWithin(t, gc)
	hc := acceptWithin(t, hostAccept(l))
	link.Close()
	testbus.Eventually(t, "the connection down", func() bool {
		select {
		case <-hc.down:
			return true
		default:
			return false
		}
	})
	testbus.Eventually(t, "no connection counted", func() bool {
		r.srv.mu.Lock()
		defer r.srv.mu.Unlock()
		return len(r.srv.perGuest) == 0 && len(r.srv.conns) == 0
	})
	// What the host reads now is a reset, not an end of stream.
	if _, err := hc.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) || !errors.Is(err, ErrReset) {
		t.Fatalf("Read after the guest went: %v", err)
	}
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
}

// A listener whose backlog is full refuses further connects; one that
// closes refuses everything.
func TestBacklogAndListenerClose(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{Backlog: 1}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	testbus.Eventually(t, "the connection queued", func() bool { return len(l.queue) == 1 })
	if _, err := DialContext(testbus.Context(t), r.Client, svc5000); !errors.Is(err, ErrRefused) {
		t.Fatalf("dial past the backlog: %v", err)
	}
	if _, err := r.srv.Listen(svc5000); err == nil {
		t.Fatal("a second listener on the service")
	}
	// Close closes what was not accepted: the guest's end sees the
	// rescind, and its Close does not wait out CloseTimeout.
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	closeWithin(t, c1)
	if _, err := DialContext(testbus.Context(t), r.Client, svc5000); !errors.Is(err, ErrRefused) {
		t.Fatalf("dial after the listener closed: %v", err)
	}
}

// Server.Close takes every connection down, open or being made, and
// returns once they are; later calls fail.
func TestServerClose(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	acceptWithin(t, hostAccept(l))
	// One being made: offered, never opened.
	g := newRawGuest(t, r.Served, protocol.VersionCopper)
	g.send(&protocol.TLConnectRequest{EndpointID: ServiceForPort(3000), ServiceID: svc5000})
	if _, ok := g.recv().(*protocol.OfferChannel); !ok {
		t.Fatal("want the offer")
	}
	go func() {
		// The raw guest answers the rescind Close sends.
		if rc, ok := g.recv().(*protocol.RescindChannelOffer); ok {
			g.send(&protocol.RelIDReleased{ChannelID: rc.ChannelID})
		}
	}()
	if err := r.srv.Close(); err != nil {
		t.Fatal(err)
	}
	r.srv.mu.Lock()
	n := len(r.srv.perGuest)
	r.srv.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d guests with connections after Close", n)
	}
	closeWithin(t, gc)
	if _, err := r.srv.Listen(svc5000); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Listen after Close: %v", err)
	}
	if _, err := r.srv.Dial(context.Background(), r.Guest, svc5000); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
}

// closeWithin closes a guest's end, which the host rescinded: it must
// not wait out CloseTimeout.
func closeWithin(t *testing.T, c *Conn) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-c.down:
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
