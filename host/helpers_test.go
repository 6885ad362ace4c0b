package host_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

func testCtx(t *testing.T) context.Context { return testbus.Context(t) }

// served is a host serving one or more guests over transport.Pipe.
type served struct{ *testbus.Served }

func newServed(t *testing.T, cfg host.Config) *served {
	return &served{testbus.NewServed(t, cfg)}
}

// rawGuest speaks messages directly, for tests of misbehaviour.
type rawGuest struct {
	t   *testing.T
	c   *transport.Conn
	mem *guestmem.Memory
	buf []byte
}

func (s *served) raw(t *testing.T, memSize uint64) *rawGuest {
	t.Helper()
	c := s.Pipe(t)
	g := &rawGuest{t: t, c: c, buf: make([]byte, transport.MaxMessageSize)}
	if memSize > 0 {
		mem, err := guestmem.New(memSize)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mem.Close() })
		if err := c.SendMemory(mem); err != nil {
			t.Fatal(err)
		}
		g.mem = mem
	}
	return g
}

func (g *rawGuest) send(m protocol.Message) {
	g.t.Helper()
	g.sendBytes(protocol.Marshal(m))
}

func (g *rawGuest) sendBytes(b []byte) {
	g.t.Helper()
	if err := g.c.Send(b); err != nil {
		g.t.Fatal(err)
	}
}

// recv returns the next message, or fails the test.
func (g *rawGuest) recv() protocol.Message {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := g.c.Recv(ctx, g.buf)
	if err != nil {
		g.t.Fatalf("recv: %v", err)
	}
	m, err := protocol.Decode(g.buf[:n])
	if err != nil {
		g.t.Fatalf("decode: %v", err)
	}
	return m
}

// quiet checks that no message arrives for a short while.
func (g *rawGuest) quiet() {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n, err := g.c.Recv(ctx, g.buf)
	if !errors.Is(err, context.DeadlineExceeded) {
		g.t.Fatalf("want no message, got %d bytes, err %v", n, err)
	}
}

func (g *rawGuest) contact(v protocol.Version) *protocol.VersionResponse {
	g.t.Helper()
	g.send(&protocol.InitiateContact{VersionRequested: v, MessageSINT: 2})
	vr, ok := g.recv().(*protocol.VersionResponse)
	if !ok {
		g.t.Fatal("want VersionResponse")
	}
	return vr
}

// offers sends RequestOffers and collects the answer.
func (g *rawGuest) offers() []*protocol.OfferChannel {
	g.t.Helper()
	g.send(&protocol.RequestOffers{})
	var out []*protocol.OfferChannel
	for {
		switch m := g.recv().(type) {
		case *protocol.OfferChannel:
			out = append(out, m)
		case *protocol.AllOffersDelivered:
			return out
		default:
			g.t.Fatalf("unexpected %v", m.Type())
		}
	}
}

// recordingDevice counts opens and closes and can map a GPADL on open.
type recordingDevice struct {
	spec host.OfferSpec
	mu   sync.Mutex
	open map[*host.Channel]bool
	// opens and closes count calls
	opens, closes int
	failOpen      error
	closed        chan *host.Channel
}

func newRecording(typ string) *recordingDevice {
	return &recordingDevice{
		spec:   host.OfferSpec{InterfaceType: protocol.MustParseGUID(typ), InterfaceInstance: protocol.MustParseGUID("11111111-2222-3333-4444-555555555555")},
		open:   make(map[*host.Channel]bool),
		closed: make(chan *host.Channel, 16),
	}
}

func (d *recordingDevice) Offer() host.OfferSpec { return d.spec }
func (d *recordingDevice) Open(ch *host.Channel) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failOpen != nil {
		return d.failOpen
	}
	d.opens++
	d.open[ch] = true
	return nil
}
func (d *recordingDevice) Close(ch *host.Channel) {
	d.mu.Lock()
	d.closes++
	delete(d.open, ch)
	d.mu.Unlock()
	d.closed <- ch
}
func (d *recordingDevice) counts() (opens, closes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opens, d.closes
}
