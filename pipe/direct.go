package pipe

import "github.com/govmbus/govmbus/channel"

// DirectFunc takes received data on the channel's receive goroutine, in
// stream order: bufs are the data of the packets of one batch, oldest
// first. It returns how many bytes it took, from the start of bufs. It
// must not block (a non-blocking write to a socket), and must not keep
// bufs after it returns: the bytes live in the channel's packets, which
// are completed once taken.
type DirectFunc func(bufs [][]byte) int

// SetDirect (byte mode) lets data bypass Read while a Read waits with
// nothing held: the packets that come then are held without waking the
// Read, and at the end of the channel's batch (its ProcessingComplete),
// or once the Conn holds as many packets as it may (Config.MaxPackets),
// they go to fn at once; only what fn leaves wakes the Read. A relay
// that passes the stream on to a socket writes a batch there from the
// receive goroutine, with one writev, instead of waking its reader for
// it: that hand-off between two goroutines is a thread wake-up.
//
// The caller's part of the bargain: a Read waits only once everything it
// read before is passed on, so that what fn takes cannot overtake it.
// The order stays the stream's, and fn sees only data: the end of
// stream and errors go through Read, and message mode never uses fn. nil
// turns it off. Set it before the channel is enabled, or while no Read
// runs.
func (c *Conn) SetDirect(fn DirectFunc) {
	c.rmu.Lock()
	c.direct = fn
	c.rmu.Unlock()
}

// holdDirect reports whether a data packet just held may wait for the
// batch's end rather than wake the Read: the direct function is set and
// a Read waits. Must hold rmu.
func (c *Conn) holdDirect() bool {
	return c.direct != nil && c.waiting && !c.message.Load()
}

// onBatchEnd is the channel's ProcessingComplete: the batch's packets
// held for the direct function go to it.
func (c *Conn) onBatchEnd(*channel.Channel, int) {
	c.rmu.Lock()
	c.flushDirect()
}

// flushDirect passes what is held to the direct function, if a Read
// still waits, and wakes the Read for what is left. Must hold rmu; it
// releases it.
func (c *Conn) flushDirect() {
	if !c.deferred {
		c.rmu.Unlock()
		return
	}
	c.deferred = false
	done := c.ddone[:0]
	if c.holdDirect() && c.qHead < len(c.q) {
		bufs := c.iov[:0]
		off := c.off
		for i := c.qHead; i < len(c.q); i++ {
			bufs = append(bufs, c.q[i].data[off:])
			off = 0
		}
		n := c.direct(bufs)
		clear(bufs)
		c.iov = bufs[:0]
		done = c.consume(max(n, 0), done)
	}
	wake := c.qHead < len(c.q)
	if wake {
		// The Read takes what is left: it no longer waits, and later
		// packets are for it too until it waits again. Woken under rmu,
		// as process does.
		c.waiting = false
		c.wakeReader()
	}
	c.rmu.Unlock()
	for i, p := range done {
		p.Complete(nil)
		done[i] = nil
	}
	c.ddone = done[:0]
}

// consume drops n bytes from the head of the queue, appending the
// packets read to their end to done. Must hold rmu, with no Read taking
// from the queue (one waits).
func (c *Conn) consume(n int, done []*channel.Packet) []*channel.Packet {
	for n > 0 && c.qHead < len(c.q) {
		h := &c.q[c.qHead]
		m := min(n, len(h.data)-c.off)
		n -= m
		if c.off += m; c.off < len(h.data) {
			break
		}
		if h.pk != nil {
			done = append(done, h.pk)
		} else {
			c.uncopy()
		}
		*h = held{}
		c.qHead++
		c.off = 0
	}
	if c.qHead == len(c.q) {
		c.q, c.qHead = c.q[:0], 0
	}
	return done
}
