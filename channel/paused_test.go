package channel

import (
	"sync/atomic"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestPausedServerWritesNothing: a paused server channel, and one saved
// before its first Start, writes nothing to its ring: a send queues,
// TrySend and a synchronous request that may not queue are refused, and
// what waited is sent at Start.
func TestPausedServerWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, s *Channel)
	}{
		{"paused", func(t *testing.T, s *Channel) {
			must(t, s.Start())
			must(t, s.Pause())
		}},
		{"saved before Start", func(t *testing.T, s *Channel) {
			must(t, s.SaveBegin())
			s.SaveEnd()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			r := newRig(t)
			var got atomic.Int32
			s := r.newServer(t, echo, StateCallbacks{})
			c := r.newClient(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
				got.Add(1)
				p.Complete(nil)
			}, StateCallbacks{})
			must(t, s.Enable())
			must(t, c.Enable())
			waitState(t, c, StateActive)
			waitState(t, s, StateStopped)
			tc.stop(t, s)

			before := s.Stats().PacketsOut
			p, err := s.AllocatePacket()
			must(t, err)
			must(t, p.Send([]byte("queued.."), 0))
			if err := s.TrySend([]byte("refused.")); StatusOf(err) != StatusBufferOverflow {
				t.Fatalf("TrySend: %v", err)
			}
			if _, err := s.SendSynchronousRequest([]byte("refused."), nil, 0, nil, 0); StatusOf(err) != StatusBufferOverflow {
				t.Fatalf("SendSynchronousRequest without queueing: %v", err)
			}
			if n := queued(s); n != 1 {
				t.Fatalf("%d packets queued, want the one sent", n)
			}
			if after := s.Stats().PacketsOut; after != before {
				t.Fatalf("the stopped channel wrote %d packets", after-before)
			}
			must(t, s.Start())
			eventually(t, "the queued packet at Start", func() bool { return got.Load() == 1 })
			if n := queued(s); n != 0 {
				t.Fatalf("%d packets still queued", n)
			}
		})
	}
}
