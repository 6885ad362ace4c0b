package echo

import (
	"slices"
	"sync/atomic"

	"github.com/govmbus/govmbus/channel"
)

// outRing is the outgoing packets of one sender (the stream's sender, or
// the VSP's receive goroutine), reused round robin.
//
// The channel completes a send without SendWaitForCompletion once the
// packet is in the ring, and sends in order (a packet waits behind those
// queued before it), so packets complete in the order they were sent: the
// next one round robin, sent longest ago, is the first to be idle again.
// The owner counts each packet's sends in a plain field, the completion
// routine, on whatever goroutine it runs, counts its completions
// atomically, and a packet is idle when the two agree. That is one atomic
// add per packet, where a free list under a mutex took four atomic
// operations and a Go channel two locks and two copies.
//
// An outRing is not safe for concurrent use: one goroutine at a time owns
// it (take, insert, send); only outSlot.complete runs elsewhere.
type outRing struct {
	slots []*outSlot
	next  int // the slot take tries first
}

// outSlot is one packet of an outRing. op.Context points back to it.
type outSlot struct {
	op   *channel.OutPacket
	sent uint64        // sends started; the owner's
	done atomic.Uint64 // sends completed
	// in is the incoming packet this one answers (VSP only): set by the
	// owner before the send, taken by the completion routine.
	in *channel.Packet
}

// newOutSlot makes op a packet of an outRing.
func newOutSlot(op *channel.OutPacket) *outSlot {
	s := &outSlot{op: op}
	op.Context = s
	return s
}

// slotOf is the outSlot of one of an outRing's packets.
func slotOf(op *channel.OutPacket) *outSlot { return op.Context.(*outSlot) }

// idle reports whether the packet has no send under way.
func (s *outSlot) idle() bool { return s.done.Load() == s.sent }

// send sends payload in band. On an error no completion runs, so the send
// is not counted.
func (s *outSlot) send(payload []byte) error {
	s.sent++
	err := s.op.Send(payload, 0)
	if err != nil {
		s.sent--
	}
	return err
}

// complete counts a completion: the completion routine calls it last,
// after it took what it needed from the slot.
func (s *outSlot) complete() { s.done.Add(1) }

// take returns an idle packet, round robin, or nil if every one is busy.
// The first try succeeds unless sends wait for ring space.
func (r *outRing) take() *outSlot {
	n := len(r.slots)
	for i := range n {
		j := r.next + i
		if j >= n {
			j -= n
		}
		if s := r.slots[j]; s.idle() {
			r.next = j + 1
			if r.next == n {
				r.next = 0
			}
			return s
		}
	}
	return nil
}

// insert adds an idle packet, to be taken next.
func (r *outRing) insert(s *outSlot) { r.slots = slices.Insert(r.slots, r.next, s) }

// len is the number of packets.
func (r *outRing) len() int { return len(r.slots) }
