package channel

import (
	"errors"

	"github.com/govmbus/govmbus/ring"
)

// qitem links a packet into the channel's send queue: an outgoing packet,
// or an incoming packet whose completion waits for ring space.
type qitem struct {
	next *qitem
	out  *OutPacket
	in   *Packet
}

// enqueue appends to the send queue. Must hold sendMu.
func (c *Channel) enqueue(q *qitem) {
	c.st.queued++
	q.next = nil
	if c.qTail == nil {
		c.qHead = q
	} else {
		c.qTail.next = q
	}
	c.qTail = q
}

// flush writes what the send queue holds, as far as the ring has room.
func (c *Channel) flush(ep *endpoint) (*qitem, bool) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.qHead == nil || c.sendEP != ep {
		return nil, false
	}
	return c.flushLocked(ep)
}

// flushLocked writes queued packets in order until the ring is full; then
// it asks the peer (pending send size) to signal once the head fits. It
// returns the items written whose senders must hear of it, and whether the
// peer must be signalled. While writes are stopped (paused.go) it writes
// nothing. Must hold sendMu.
func (c *Channel) flushLocked(ep *endpoint) (done *qitem, sig bool) {
	if c.gate == gateShut {
		return nil, false
	}
	var tail *qitem
	wrote, committed := false, false
	for c.qHead != nil {
		q := c.qHead
		var err error
		var size, hdr int
		if q.out != nil {
			p := q.out
			err = c.write(ep, p, p.buf[:p.n], p.ranges)
			size, hdr = p.n, p.headerLen(p.ranges)
		} else {
			p := q.in
			err = ep.writeCompletion(p.txid, p.buf[:p.cn])
			size = p.cn
		}
		if errors.Is(err, ring.ErrFull) {
			if wrote && !c.txHold {
				sig = ep.w.Commit() || sig
				wrote, committed = false, true
			}
			ready, werr := ep.w.WaitFor(size, hdr)
			if werr == nil && ready {
				continue
			}
			if werr == nil {
				break
			}
			err = werr
		}
		// Written, or failed for good (a broken ring): either way the
		// item leaves the queue.
		c.qHead = q.next
		if c.qHead == nil {
			c.qTail = nil
		}
		q.next = nil
		if err == nil {
			wrote = true
			c.st.wrote(size)
		}
		if q.out != nil {
			p := q.out
			switch {
			case errors.Is(err, ring.ErrTooLarge):
				p.status = StatusInvalidBufferSize // queued before the ring was known
			case err != nil:
				p.status = StatusDeviceRemoved
			case p.wait:
				p.state = outInFlight
				continue // completes when the peer answers
			default:
				p.status = StatusSuccess
			}
			p.state = outIdle
		}
		if tail == nil {
			done = q
		} else {
			tail.next = q
		}
		tail = q
	}
	if wrote && !c.txHold {
		sig = ep.w.Commit() || sig
		committed = true
	}
	if committed {
		c.st.commit(sig)
	}
	return done, sig
}

// finishSent signals the peer and tells the senders of written packets.
func (c *Channel) finishSent(ep *endpoint, done *qitem, sig bool) {
	if sig {
		ep.signal()
	}
	for q := done; q != nil; {
		next := q.next
		q.next = nil
		if q.out != nil {
			q.out.completed(q.out.status, nil)
		} else {
			c.recycle(q.in)
		}
		q = next
	}
}

// onCompletion routes the peer's completion to the packet waiting for it.
// A completion for no packet in flight is ignored. On the receive loop.
func (c *Channel) onCompletion(rp *ring.Packet) {
	txid := rp.TransactionID
	slot := uint32(txid)
	c.sendMu.Lock()
	var p *OutPacket
	if int(slot) < len(c.outSlots) {
		p = c.outSlots[slot]
	}
	if p == nil || p.txid != txid || p.state != outInFlight {
		c.sendMu.Unlock()
		return
	}
	p.state = outIdle
	// The guest is done with the packet's ranges: they may be reused.
	p.releaseTransfer()
	c.sendMu.Unlock()
	p.completed(StatusSuccess, rp.Payload())
}

// failOutgoing completes every queued and in-flight packet with
// StatusDeviceRemoved and drops queued completions, as the channel closes.
func (c *Channel) failOutgoing() {
	c.sendMu.Lock()
	var failed []*OutPacket
	var ins []*Packet
	for q := c.qHead; q != nil; {
		next := q.next
		q.next = nil
		if q.out != nil {
			q.out.state = outIdle
			failed = append(failed, q.out)
		} else {
			ins = append(ins, q.in)
		}
		q = next
	}
	c.qHead, c.qTail = nil, nil
	for _, p := range c.outSlots {
		if p != nil && p.state == outInFlight {
			p.state = outIdle
			failed = append(failed, p)
		}
	}
	c.sendEP = nil
	for _, p := range failed {
		p.releaseTransfer()
	}
	c.sendMu.Unlock()
	c.wakeSpaceWaiter() // to hear that the channel closed
	for _, p := range failed {
		p.completed(StatusDeviceRemoved, nil)
	}
	for _, p := range ins {
		c.recycle(p)
	}
}
