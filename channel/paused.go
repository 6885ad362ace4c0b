package channel

// Nothing reaches the outgoing ring of a server channel that is paused or
// being saved, until Start (or Release) lets packets flow again. A save
// records the send queue as it finds it, and the successor of a servicing
// sends that queue: a packet or completion the paused channel wrote after
// the save would reach the peer twice, once from each process. Every
// write path goes through the gate, gate under sendMu:
//
//   - a send queues (TrySend, and a SendSynchronousRequest that may not
//     queue, refuse with StatusBufferOverflow);
//   - a completion (only a restartable packet's can come while paused) is
//     held in the channel (gateHold, and gateShut as well);
//   - the queue's flush, on the receive goroutine's every wake-up (the
//     peer freeing the space this end asked for with the pending send
//     size) or after a send or completion, writes nothing, and so asks
//     for no signal and sends none.
//
// Pause closes the gate once its packets have stopped; a save closes it
// too, for a channel saved before its first Start. Start and Release
// open it: the held completions join the queue and are written, and the
// receive goroutine, which they wake, writes the rest of the queue.
// Closing the channel drops what waited.
// A paused client channel, whose state is never saved, only holds its
// completions: it stops reading, not sending.

// txGate is what may reach a channel's outgoing ring.
type txGate uint8

const (
	gateOpen txGate = iota // everything is written
	gateHold               // completions are held: a paused client
	gateShut               // nothing is written: a paused or saved server
)

// stopWrites closes the gate as the channel pauses (on a client, only
// for completions).
func (c *Channel) stopWrites() {
	c.sendMu.Lock()
	if c.server {
		c.gate = gateShut
	} else {
		c.gate = gateHold
	}
	c.sendMu.Unlock()
}

// holdLocked keeps p's completion payload while the channel is paused.
// Must hold sendMu, with the gate not open.
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

// resumeWrites opens the gate as the channel goes live again: the
// completions held meanwhile join the send queue's tail and are written.
// The rest of the queue is the receive goroutine's to write: every caller
// wakes it next, and Release, which many channels call in a row, stays
// short.
func (c *Channel) resumeWrites() {
	c.sendMu.Lock()
	c.gate = gateOpen
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

// dropHeld forgets the held completions of a channel that closes (its
// packet pool is reset) and opens the gate for its next open.
func (c *Channel) dropHeld() {
	c.sendMu.Lock()
	clear(c.held)
	c.held = c.held[:0]
	c.gate = gateOpen
	c.sendMu.Unlock()
}
