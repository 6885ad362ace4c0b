package host

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// fuzzDevice accepts every open and does nothing else.
type fuzzDevice struct{ spec OfferSpec }

func (d *fuzzDevice) Offer() OfferSpec       { return d.spec }
func (d *fuzzDevice) Open(ch *Channel) error { _, err := ring.NewReader(ch.In); return err }
func (d *fuzzDevice) Close(*Channel)         {}

// FuzzHostMessages feeds one guest connection a sequence of messages cut
// from the input: each is a u8 length then that many bytes. The host must
// not panic, and must still be able to close down.
func FuzzHostMessages(f *testing.F) {
	seed := func(msgs ...protocol.Message) []byte {
		var b []byte
		for _, m := range msgs {
			mb := protocol.Marshal(m)
			b = append(b, byte(len(mb)))
			b = append(b, mb...)
		}
		return b
	}
	f.Add(seed(&protocol.InitiateContact{VersionRequested: protocol.VersionIron, MessageSINT: 2}, &protocol.RequestOffers{}))
	f.Add(seed(&protocol.InitiateContact{VersionRequested: protocol.VersionWin10}, &protocol.RequestOffers{},
		&protocol.GpadlHeader{ChannelID: 1, GpadlID: 7, RangeBufferLen: 24, RangeCount: 1, Data: []uint64{2 * 4096 << 0, 0}},
		&protocol.GpadlBody{GpadlID: 7, Data: []uint64{1}},
		&protocol.OpenChannel{ChannelID: 1, RingGpadlID: 7, DownstreamRingPageOffset: 1},
		&protocol.CloseChannel{ChannelID: 1}, &protocol.GpadlTeardown{ChannelID: 1, GpadlID: 7}, &protocol.Unload{}))
	f.Add(seed(&protocol.GpadlBody{GpadlID: 1, Data: []uint64{1}}, &protocol.Unload{}))
	f.Add([]byte{3, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := New(Config{Devices: []Device{&fuzzDevice{spec: OfferSpec{InterfaceType: protocol.GUID{1}}}}, Limits: Limits{MaxBadMessages: 1000}})
		hc, gc, err := transport.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer gc.Close()
		mem, err := guestmem.New(16 * 4096)
		if err != nil {
			t.Fatal(err)
		}
		defer mem.Close()
		// Two formatted rings at pages 0-1 and 2-3, so opens can succeed.
		ring.Format(mem.Bytes()[:2*4096], true)
		ring.Format(mem.Bytes()[2*4096:4*4096], true)
		if err := gc.SendMemory(mem); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- h.ServeConn(hc) }()
		// Drain whatever the host answers so it never blocks on us.
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			buf := make([]byte, transport.MaxMessageSize)
			for {
				if _, err := gc.Recv(context.Background(), buf); err != nil {
					return
				}
			}
		}()
		for len(data) > 0 {
			n := int(data[0])
			data = data[1:]
			if n > len(data) {
				n = len(data)
			}
			msg := data[:n]
			data = data[n:]
			if len(msg) == 0 || len(msg) > transport.MaxMessageSize {
				continue
			}
			// Hand over events before an OpenChannel, as a guest would.
			if len(msg) >= 12 && binary.LittleEndian.Uint32(msg) == uint32(protocol.TypeOpenChannel) {
				id := binary.LittleEndian.Uint32(msg[8:])
				for _, dir := range []transport.Direction{transport.ToHost, transport.ToGuest} {
					if e, err := transport.NewEvent(); err == nil {
						gc.SendEvent(id, dir, e)
						e.Close()
					}
				}
			}
			if err := gc.Send(msg); err != nil {
				break
			}
		}
		// The fuzzed guest never answers a rescind: a short wait covers the
		// rescind path without stalling every run.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil && err != context.DeadlineExceeded {
			t.Fatalf("Shutdown: %v", err)
		}
		<-done
		gc.Close()
		<-drained
	})
}
