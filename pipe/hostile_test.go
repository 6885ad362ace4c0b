package pipe

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

func rawHeader(typ, n uint32) []byte {
	b := make([]byte, HeaderSize)
	binary.LittleEndian.PutUint32(b[0:], typ)
	binary.LittleEndian.PutUint32(b[4:], n)
	return b
}

// TestHostilePeer: a raw peer (a server channel without a Conn) writes
// packets that break the framing after a good one. The Conn's Read gives
// the good data, then ErrMalformed, and keeps returning it; the channel
// does not stall: the peer can go on writing far more than the rings
// and the Conn's packets hold, each packet completed and dropped.
func TestHostilePeer(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name  string
		parts [][]byte
		stops bool // past the channel's packet size: its queue stops
	}{
		{"empty payload", nil, false},
		{"type 2 (partial)", [][]byte{rawHeader(2, 0)}, false},
		{"type 3 (GPA direct set-up)", [][]byte{rawHeader(3, 0)}, false},
		{"type 4 (GPA direct tear-down)", [][]byte{rawHeader(4, 0)}, false},
		{"unknown type", [][]byte{rawHeader(99, 8), make([]byte, 8)}, false},
		{"size past the payload", [][]byte{rawHeader(1, 100), make([]byte, 8)}, false},
		{"size past the maximum", [][]byte{rawHeader(1, MaxData+1), make([]byte, MaxData+8)}, true},
		{"packet past the maximum", [][]byte{rawHeader(1, 8), make([]byte, MaxData+8)}, true},
		{"data after the end", [][]byte{rawHeader(1, 0), rawHeader(1, 3), []byte("abc")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigConfig{
				mode:      channel.PipeByte,
				rawServer: func(_ *channel.Channel, p *channel.Packet, _ []byte, _ channel.PacketFlags) { p.Complete(nil) },
				client:    Config{MaxPackets: 2},
				ringPages: 8,
			})
			send := func(parts ...[]byte) {
				t.Helper()
				ctx := testbus.Context(t)
				for {
					err := r.sch.TrySendParts(0, parts...)
					if !errors.Is(err, channel.StatusBufferOverflow) {
						must(t, err)
						return
					}
					must(t, r.sch.WaitSendSpace(ctx, HeaderSize+1000))
				}
			}
			send(rawHeader(1, 4), []byte("good"))
			if tc.name == "data after the end" {
				send(tc.parts[0])
				send(tc.parts[1:]...)
				// Until the bad packet is in, the end is all a Read can
				// know of: EOF. The receive goroutine publishes its
				// count at the end of the batch that took the packet.
				testbus.Eventually(t, "the data after the end received", func() bool { return r.cch.Stats().PacketsIn >= 3 })
			} else {
				send(tc.parts...)
			}
			b := make([]byte, 16)
			n, err := r.client.Read(b)
			if err != nil || string(b[:n]) != "good" {
				t.Fatalf("Read before the bad packet: %q, %v", b[:n], err)
			}
			for range 2 {
				if n, err := r.client.Read(b); n != 0 || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Read at the bad packet: %d, %v; want ErrMalformed", n, err)
				}
			}
			if tc.stops {
				// The channel's own rule for a packet past its limits:
				// it stops reading, and the Conn hears why.
				return
			}
			// Four times what the client's ring (28 KiB) and its two
			// packets hold: it reads on, and drops.
			for range 128 {
				send(rawHeader(1, 1000), make([]byte, 1000))
			}
			if _, err := r.client.Read(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Read after more packets: %v", err)
			}
		})
	}
}
