package channel

// Restartable packets: an incoming packet whose processing can start over
// from its payload, with the same result for the peer, need not hold up a
// Pause. A servicing host then saves it as still to do, and the restored
// channel indicates it again; what the old processing completes after the
// pause is held back, never written to a ring the channel may no longer
// own. A blk flush is the case in point: its fsync can take as long as
// the disk likes, and a pause that waited for it would put that time into
// the servicing's blackout.

// SetRestartable marks p, an incoming packet still being processed, as one
// whose processing may be done again from the start with the same effect,
// a govmbus extension of KMCL: a request such as a flush, whose work has
// no effect but the one a second run repeats, and that carries no
// external data (the old process must touch no guest memory for it once
// the channel is saved). Call it during ProcessPacket, before handing the
// packet to another goroutine.
//
// Pause does not wait for a restartable packet (unless
// ServicingView.SetPauseWaitsForRestartable asked it to). If the channel is saved
// while the packet is outstanding, the state records it (payload,
// transaction id and whether a completion is due), and the channel
// restored from that state indicates it to ProcessPacket again, on the
// worker, once it runs. A completion of the packet that comes while the
// channel is paused is held in the channel: saved as a queued completion
// if a save follows, sent when the channel starts again otherwise, and
// never written to the ring meanwhile. Closing the channel still waits
// for the packet.
//
// It returns an error matching StatusInvalidParameter for a packet with
// external data, and panics, as Complete does, for a packet that is not
// outstanding.
func (p *Packet) SetRestartable() error {
	c := p.c
	if len(p.ranges) > 0 {
		return fail(StatusInvalidParameter, "SetRestartable: the packet has external data")
	}
	if p.view != nil {
		// In place: the payload must outlive ProcessPacket, for a save.
		p.n = copy(p.grow(len(p.view)), p.view)
		p.view = nil
	}
	c.mu.Lock()
	p.checkOwned("SetRestartable")
	if !p.restart {
		p.restart = true
		c.restarts = append(c.restarts, p)
	}
	idle := c.idleWaiters > 0 && c.outstanding == len(c.restarts)
	c.mu.Unlock()
	if idle {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
	return nil
}

// unrestartLocked ends p's restartable life as it is completed. Must hold
// mu; with sendMu too when the completion is about to be written or held,
// so that a save sees the packet either as still to do or as completed.
func (c *Channel) unrestartLocked(p *Packet) {
	if !p.restart {
		return
	}
	p.restart = false
	for i, q := range c.restarts {
		if q == p {
			last := len(c.restarts) - 1
			c.restarts[i] = c.restarts[last]
			c.restarts[last] = nil
			c.restarts = c.restarts[:last]
			return
		}
	}
}

// busyLocked is the number of outstanding packets a Pause waits for: all
// but the restartable ones. Must hold mu.
func (c *Channel) busyLocked() int { return c.outstanding - len(c.restarts) }

// redoLocked hands the restartable packets a restore brought back to the
// worker, which indicates them before anything the receive loop reads
// next. Must hold mu, as the channel goes live.
func (c *Channel) redoLocked() {
	for i, r := range c.redo {
		if len(c.inFree) == 0 && !c.growPoolLocked() {
			// Not for a state parseState took (it bounds the records
			// by the pool): the rest waits for the next time.
			c.redo = c.redo[i:]
			return
		}
		n := len(c.inFree)
		p := c.inFree[n-1]
		c.inFree = c.inFree[:n-1]
		c.outstanding++
		p.state = pktDeferred
		p.view = nil
		p.n = copy(p.grow(len(r.Payload)), r.Payload)
		p.txid, p.want = r.TxID, r.Want
		p.ranges, p.pfns = p.ranges[:0], p.pfns[:0]
		clear(p.ctx)
		c.work.push(workItem{p: p})
	}
	c.redo = nil
}
