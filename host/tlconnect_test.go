package host_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// connectRecorder is a Config.OnConnect that records each request and
// answers with what answer returns.
type connectRecorder struct {
	mu     sync.Mutex
	reqs   []protocol.TLConnectRequest
	answer func(g *host.Guest, req protocol.TLConnectRequest) error
	calls  chan protocol.TLConnectRequest
}

func newConnectRecorder(answer func(*host.Guest, protocol.TLConnectRequest) error) *connectRecorder {
	return &connectRecorder{answer: answer, calls: make(chan protocol.TLConnectRequest, 256)}
}

func (r *connectRecorder) onConnect(g *host.Guest, req protocol.TLConnectRequest) error {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	r.calls <- req
	if r.answer == nil {
		return nil
	}
	return r.answer(g, req)
}

func (r *connectRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func endpoint(n uint32) protocol.GUID {
	g := protocol.MustParseGUID("00000000-facb-11e6-bd58-64006a7986d3")
	g[0], g[1], g[2], g[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return g
}

var service5000 = endpoint(5000)

func wantRefusal(t *testing.T, g *rawGuest, req *protocol.TLConnectRequest) {
	t.Helper()
	r, ok := g.recv().(*protocol.TLConnectRequestResult)
	if !ok || r.EndpointID != req.EndpointID || r.ServiceID != req.ServiceID || r.Status != protocol.StatusConnectionRefused {
		t.Fatalf("want a refusal of %v→%v, got %+v", req.EndpointID, req.ServiceID, r)
	}
}

// A refusal is a TlConnectRequestResult from 4.1 and nothing before it;
// without OnConnect every request is refused.
func TestTLConnectRefusal(t *testing.T) {
	leakcheck.Check(t)
	refuse := newConnectRecorder(func(*host.Guest, protocol.TLConnectRequest) error { return errors.New("no listener") })
	for _, tc := range []struct {
		name    string
		v       protocol.Version
		handler func(*host.Guest, protocol.TLConnectRequest) error
		answer  bool
	}{
		{"4.1 handler refuses", protocol.VersionWin10RS30, refuse.onConnect, true},
		{"5.3 no handler", protocol.VersionIron, nil, true},
		{"4.0 handler refuses", protocol.VersionWin10, refuse.onConnect, false},
		{"4.0 no handler", protocol.VersionWin10, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServed(t, host.Config{OnConnect: tc.handler})
			g := s.raw(t, 1<<20)
			g.contact(tc.v)
			g.offers()
			req := &protocol.TLConnectRequest{EndpointID: endpoint(0xC000), ServiceID: service5000}
			g.send(req)
			if tc.answer {
				wantRefusal(t, g, req)
				return
			}
			// Nothing comes back; the next request's answer shows the
			// first one was handled (and not answered).
			g.send(&protocol.RequestOffers{}) // a second one: dropped, no answer either
			g.quiet()
		})
	}
	if refuse.count() != 2 {
		t.Fatalf("OnConnect called %d times, want 2", refuse.count())
	}
}

// Type 21 is a 4.0 message: before it the host drops it without calling
// OnConnect; the 56-byte form with a silo id is 5.2's.
func TestTLConnectVersions(t *testing.T) {
	leakcheck.Check(t)
	rec := newConnectRecorder(nil)
	s := newServed(t, host.Config{OnConnect: rec.onConnect})

	old := s.raw(t, 1<<20)
	old.contact(protocol.VersionWin81)
	old.offers()
	old.send(&protocol.TLConnectRequest{EndpointID: endpoint(1), ServiceID: service5000})
	old.quiet()

	silo := protocol.MustParseGUID("5110ad00-0000-0000-0000-000000000001")
	v51 := s.raw(t, 1<<20)
	v51.contact(protocol.VersionWin10RS4)
	v51.offers()
	v51.send(&protocol.TLConnectRequest{EndpointID: endpoint(2), ServiceID: service5000, HasSiloID: true, SiloID: silo})
	v51.quiet()
	if n := rec.count(); n != 0 {
		t.Fatalf("OnConnect called %d times for requests it must not see", n)
	}

	v52 := s.raw(t, 1<<20)
	v52.contact(protocol.VersionWin10RS5)
	v52.offers()
	v52.send(&protocol.TLConnectRequest{EndpointID: endpoint(3), ServiceID: service5000, HasSiloID: true, SiloID: silo})
	got := <-rec.calls
	if got.EndpointID != endpoint(3) || !got.HasSiloID || got.SiloID != silo {
		t.Fatalf("OnConnect got %+v", got)
	}
	// The 40-byte form stays valid at 5.2.
	v52.send(&protocol.TLConnectRequest{EndpointID: endpoint(4), ServiceID: service5000})
	if got := <-rec.calls; got.EndpointID != endpoint(4) || got.HasSiloID {
		t.Fatalf("OnConnect got %+v", got)
	}
}

// OnConnect runs outside the guest's lock: it can offer the channel that
// answers the request, and the offer reaches the guest.
func TestTLConnectOfferFromHandler(t *testing.T) {
	leakcheck.Check(t)
	rec := newConnectRecorder(func(g *host.Guest, req protocol.TLConnectRequest) error {
		d := newRecording("00000000-0000-0000-0000-000000000000")
		d.spec.InterfaceType, d.spec.InterfaceInstance = req.ServiceID, req.EndpointID
		d.spec.Flags = protocol.OfferFlagTLNPIProvider | protocol.OfferFlagNamedPipeMode | protocol.OfferFlagEnumerateDeviceInterface
		_, err := g.Offer(d)
		return err
	})
	s := newServed(t, host.Config{OnConnect: rec.onConnect})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	g.offers()
	g.send(&protocol.TLConnectRequest{EndpointID: endpoint(0xC000), ServiceID: service5000})
	o, ok := g.recv().(*protocol.OfferChannel)
	if !ok || o.InterfaceType != service5000 || o.InterfaceInstance != endpoint(0xC000) || o.Flags != 0x2011 {
		t.Fatalf("want the connection's offer, got %+v", o)
	}
}

// A guest that floods connect requests it never follows up holds at most
// Limits.MaxPendingConnects of them; the rest are refused without reaching
// OnConnect, a repeated endpoint is refused too, and another guest keeps
// its own budget.
func TestTLConnectFlood(t *testing.T) {
	leakcheck.Check(t)
	const limit = 4
	rec := newConnectRecorder(nil) // accepts, never offers
	s := newServed(t, host.Config{OnConnect: rec.onConnect, Limits: host.Limits{MaxPendingConnects: limit}})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	g.offers()
	for i := range limit {
		g.send(&protocol.TLConnectRequest{EndpointID: endpoint(uint32(i)), ServiceID: service5000})
		<-rec.calls
	}
	dup := &protocol.TLConnectRequest{EndpointID: endpoint(0), ServiceID: service5000}
	g.send(dup)
	wantRefusal(t, g, dup)
	for i := range 500 {
		req := &protocol.TLConnectRequest{EndpointID: endpoint(uint32(1000 + i)), ServiceID: service5000}
		g.send(req)
		wantRefusal(t, g, req)
	}
	if n := rec.count(); n != limit {
		t.Fatalf("OnConnect saw %d requests, want %d", n, limit)
	}
	other := s.raw(t, 1<<20)
	other.contact(protocol.VersionIron)
	other.offers()
	other.send(&protocol.TLConnectRequest{EndpointID: endpoint(7), ServiceID: service5000})
	if got := <-rec.calls; got.EndpointID != endpoint(7) {
		t.Fatalf("other guest's request: %+v", got)
	}
	// The flooding guest is still served: it was refused, not dropped.
	g.send(&protocol.RequestOffers{})
	g.quiet()
}

// A pending connect stops counting after Limits.ConnectTimeout.
func TestTLConnectExpires(t *testing.T) {
	leakcheck.Check(t)
	rec := newConnectRecorder(nil)
	s := newServed(t, host.Config{OnConnect: rec.onConnect, Limits: host.Limits{MaxPendingConnects: 1, ConnectTimeout: 1}})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionIron)
	g.offers()
	for i := range 3 {
		g.send(&protocol.TLConnectRequest{EndpointID: endpoint(uint32(i)), ServiceID: service5000})
		<-rec.calls
	}
	g.quiet()
}
