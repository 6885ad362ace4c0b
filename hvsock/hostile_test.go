package hvsock

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/pipe"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
)

// TestGuestReadHostMalformed: a host that writes a packet breaking the
// pipe framing into a guest connection's ring, after good data, ends the
// guest's Read, after that data, with an error naming the host
// (guest.ErrProtocol, and pipe.ErrMalformed).
func TestGuestReadHostMalformed(t *testing.T) {
	leakcheck.Check(t)
	service := protocol.MustParseGUID("5e1f0000-0000-4000-8000-00000000beef")
	var ud protocol.UserDefined
	ud.SetHVSock(protocol.HVSockOffer{ForGuestAccept: true, ParameterVersion: parameterVersion})
	serve := func(ctx context.Context, ch *host.Channel) {
		w, err := ring.NewWriter(ch.Out)
		if err != nil {
			return
		}
		r, err := ring.NewReader(ch.In)
		if err != nil {
			return
		}
		pkt := func(typ uint32, data []byte) []byte {
			b := make([]byte, pipe.HeaderSize+len(data))
			binary.LittleEndian.PutUint32(b[0:], typ)
			binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
			copy(b[pipe.HeaderSize:], data)
			return b
		}
		w.WriteInBand(0, 0, pkt(1, []byte("hello")))  //nolint:errcheck // the ring is empty
		w.WriteInBand(0, 0, pkt(99, []byte("junk!"))) //nolint:errcheck
		w.Commit()
		ch.ToGuest.Signal() //nolint:errcheck
		// Take in what the guest sends (its FIN at Close), so that its
		// Close does not wait for a reader.
		for ch.FromGuest.Wait(ctx) == nil {
			var p ring.Packet
			for r.Next(&p) == nil {
			}
			if r.Commit() {
				ch.ToGuest.Signal() //nolint:errcheck
			}
		}
	}
	b := testbus.New(t, testbus.Config{Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
		Spec: host.OfferSpec{InterfaceType: service, InterfaceInstance: protocol.GUID{0xe9},
			Flags: protocol.OfferFlagTLNPIProvider | protocol.OfferFlagNamedPipeMode, UserDefined: ud},
		Serve: serve,
	}}}})
	l, err := Listen(b.Client, service)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read: %q, %v; want the data before the bad packet", buf[:n], err)
	}
	_, err = c.Read(buf)
	if !errors.Is(err, guest.ErrProtocol) || !errors.Is(err, pipe.ErrMalformed) {
		t.Fatalf("Read of the bad packet: %v, want guest.ErrProtocol and pipe.ErrMalformed", err)
	}
}
