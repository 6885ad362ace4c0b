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
// Pause does not wait for a restartable packet. If the channel is saved
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

// holdCompletions makes every completion from now on wait in the channel
// instead of the ring, as the channel pauses: only restartable packets
// are completed while it is paused.
func (c *Channel) holdCompletions() {
	c.sendMu.Lock()
	c.holdDone = true
	c.sendMu.Unlock()
}

// holdLocked keeps p's completion payload while the channel is paused.
// Must hold sendMu, with c.holdDone set.
func (c *Channel) holdLocked(p *Packet, payload []byte) {
	if cap(p.buf) < len(payload) {
		p.buf = make([]byte, len(payload))
	}
	p.cn = copy(p.buf[:cap(p.buf)], payload)
	c.mu.Lock()
	p.state = pktCompleting
	c.unrestartLocked(p)
	c.outstanding--
	// Idle waiters only: the receive loop is parked, and is woken when
	// the channel goes live again anyway.
	idle := c.idleWaiters > 0 && c.busyLocked() == 0
	c.mu.Unlock()
	c.held = append(c.held, p)
	c.wakeAfter(idle, false, nil)
}

// resumeCompletions ends holdCompletions as the channel goes live again:
// the completions held meanwhile join the send queue and are written.
func (c *Channel) resumeCompletions() {
	c.sendMu.Lock()
	c.holdDone = false
	ep := c.sendEP
	if len(c.held) == 0 || ep == nil {
		c.sendMu.Unlock()
		return
	}
	for i, p := range c.held {
		c.enqueue(&p.q)
		c.held[i] = nil
	}
	c.held = c.held[:0]
	done, sig := c.flushLocked(ep)
	c.sendMu.Unlock()
	c.finishSent(ep, done, sig)
}

// dropHeld forgets the held completions of a channel that closes: its
// packet pool is reset.
func (c *Channel) dropHeld() {
	c.sendMu.Lock()
	clear(c.held)
	c.held = c.held[:0]
	c.holdDone = false
	c.sendMu.Unlock()
}

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
