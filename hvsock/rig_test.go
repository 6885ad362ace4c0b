package hvsock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

var svc5000 = ServiceForPort(5000)

// rig is a host with an hvsock Server and one guest client.
type rig struct {
	*testbus.Bus
	srv *Server
}

func newRig(t *testing.T, cfg Config, hl host.Limits, gcfg guest.Config) *rig {
	t.Helper()
	r := &rig{srv: NewServer(cfg)}
	// The server closes after the bus's guests are gone: cleanups run
	// in reverse, so register it first.
	t.Cleanup(func() { r.srv.Close() })
	r.Bus = testbus.New(t, testbus.Config{Host: host.Config{OnConnect: r.srv.OnConnect, Limits: hl}, Guest: gcfg})
	return r
}

// conns is how many connections of g the server counts.
func (s *Server) connsOf(g *host.Guest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perGuest[g]
}

// rawGuest speaks control messages directly, for a misbehaving guest.
type rawGuest struct {
	t   *testing.T
	c   *transport.Conn
	buf []byte
}

func newRawGuest(t *testing.T, b *testbus.Served, v protocol.Version) *rawGuest {
	t.Helper()
	g := &rawGuest{t: t, c: b.Pipe(t), buf: make([]byte, transport.MaxMessageSize)}
	g.send(&protocol.InitiateContact{VersionRequested: v, MessageSINT: 2})
	if vr, ok := g.recv().(*protocol.VersionResponse); !ok || !vr.VersionSupported {
		t.Fatalf("version %v refused", v)
	}
	g.send(&protocol.RequestOffers{})
	for {
		if _, ok := g.recv().(*protocol.AllOffersDelivered); ok {
			return g
		}
	}
}

func (g *rawGuest) send(m protocol.Message) {
	g.t.Helper()
	if err := g.c.Send(protocol.Marshal(m)); err != nil {
		g.t.Fatal(err)
	}
}

func (g *rawGuest) recvBytes() []byte {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbus.Timeout)
	defer cancel()
	n, err := g.c.Recv(ctx, g.buf)
	if err != nil {
		g.t.Fatalf("recv: %v", err)
	}
	return append([]byte(nil), g.buf[:n]...)
}

func (g *rawGuest) recv() protocol.Message {
	g.t.Helper()
	m, err := protocol.Decode(g.recvBytes())
	if err != nil {
		g.t.Fatal(err)
	}
	return m
}

func acceptWithin(t *testing.T, accept func() (*Conn, error)) *Conn {
	t.Helper()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.c
	case <-time.After(testbus.Timeout):
		t.Fatal("Accept did not return")
	}
	return nil
}

var errNotConn = errors.New("not a *Conn")

func hostAccept(l *Listener) func() (*Conn, error) {
	return func() (*Conn, error) {
		c, err := l.Accept()
		if err != nil {
			return nil, err
		}
		hc, ok := c.(*Conn)
		if !ok {
			return nil, errNotConn
		}
		return hc, nil
	}
}
