package pipe

import (
	"bytes"
	"fmt"
	"io"
	"net"

	"github.com/govmbus/govmbus/channel"
)

// held is one received packet not yet read: its data, in the channel's
// Packet (not completed, so that the channel's bounded pool fills and
// the peer's writer waits), or, after a Suspend, in a copy of its own.
type held struct {
	pk   *channel.Packet
	data []byte
}

// process takes one packet, on the channel's receive goroutine: data is
// held for Read, the end of stream and malformed packets are noted, and
// completed at once. Packets after a failure, after Close, or of a later
// open of the channel (a Conn is one connection: one open) are completed
// and dropped, so the channel never stalls on them.
func (c *Conn) process(_ *channel.Channel, p *channel.Packet, payload []byte, _ channel.PacketFlags) {
	data, err := ParseHeader(payload)
	c.rmu.Lock()
	switch {
	case c.rclosed || c.rerr != nil || c.chClosed:
		c.rmu.Unlock()
		p.Complete(nil)
		return
	case err != nil:
		c.rerr = err
	case c.rfin:
		c.rerr = malformed("a packet after the end of stream")
	case len(data) == 0:
		c.rfin = true
	default:
		c.push(held{pk: p, data: data})
		if c.holdDirect() {
			// For the direct function at the batch's end, or now if the
			// channel has no packet left to read the next one into.
			c.deferred = true
			if len(c.q)-c.qHead < c.maxPackets {
				c.rmu.Unlock()
				return
			}
			c.flushDirect()
			return
		}
		// Under rmu, so that a Read that takes the packet also takes its
		// wake-up (take): none is left over to wake a later Read for
		// nothing, the moment a direct function would have taken data.
		c.wakeReader()
		c.rmu.Unlock()
		return
	}
	c.rmu.Unlock()
	p.Complete(nil)
	c.wakeReader()
}

// push appends to the queue, reusing its array: the queue holds at most
// the channel's packet count and what a Suspend copied. Must hold rmu.
func (c *Conn) push(h held) {
	if c.qHead > 0 && len(c.q) == cap(c.q) {
		n := copy(c.q, c.q[c.qHead:])
		clear(c.q[n:])
		c.q, c.qHead = c.q[:n], 0
	}
	c.q = append(c.q, h)
}

func (c *Conn) wakeReader() {
	select {
	case c.rwake <- struct{}{}:
	default:
	}
}

// Read reads received data. Byte mode: up to len(b) bytes of the
// stream; what is left of a packet stays for the next Read. Message mode:
// one whole message per Read; a b too small for it fails with
// ErrShortBuffer and leaves the message for the next Read. After the
// peer's end of stream, and the data before it, Read returns io.EOF; on
// a malformed packet, ErrMalformed (after the data before it); when the
// channel closed without an end of stream, ErrChannelClosed. It blocks
// until data comes, the read deadline passes (os.ErrDeadlineExceeded) or
// Close (net.ErrClosed). A Read with an empty b returns 0, nil.
func (c *Conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		if err := c.rdl.Err(); err != nil {
			return 0, err
		}
		c.rmu.Lock()
		if c.qHead < len(c.q) {
			// The wake-up for the packets taken, if it came: see process.
			select {
			case <-c.rwake:
			default:
			}
			n, err := c.take(b)
			c.rmu.Unlock()
			for i, p := range c.done {
				p.Complete(nil)
				c.done[i] = nil
			}
			c.done = c.done[:0]
			return n, err
		}
		switch {
		case c.rerr != nil:
			err := c.rerr
			c.rmu.Unlock()
			return 0, err
		case c.rfin:
			c.rmu.Unlock()
			return 0, io.EOF
		case c.chClosed:
			c.rmu.Unlock()
			return 0, ErrChannelClosed
		}
		if len(b) == 0 {
			c.rmu.Unlock()
			return 0, nil
		}
		c.waiting = true
		c.rmu.Unlock()
		select {
		case <-c.rwake:
		case <-c.rdl.Done():
		}
		c.rmu.Lock()
		c.waiting = false
		c.rmu.Unlock()
	}
}

// take copies from the head of the queue into b: in message mode one
// message, in byte mode as many held packets as b takes, so that a
// large buffer drains the queue in one Read rather than a packet a
// call. The packets read to their end go into c.done, for Read to
// complete once rmu is released. Must hold rmu and readMu, with the
// queue not empty.
func (c *Conn) take(b []byte) (n int, err error) {
	if c.message.Load() {
		h := &c.q[c.qHead]
		if len(b) < len(h.data) {
			return 0, ErrShortBuffer
		}
		n = copy(b, h.data)
		c.pop()
		return n, nil
	}
	for n < len(b) && c.qHead < len(c.q) {
		h := &c.q[c.qHead]
		m := copy(b[n:], h.data[c.off:])
		n += m
		if c.off += m; c.off < len(h.data) {
			break
		}
		c.pop()
	}
	return n, nil
}

// pop drops the head of the queue, read to its end, its packet (if it
// holds one) going into c.done. Must hold rmu and readMu.
func (c *Conn) pop() {
	h := &c.q[c.qHead]
	if h.pk != nil {
		c.done = append(c.done, h.pk)
	} else {
		c.uncopy()
	}
	*h = held{}
	c.qHead++
	c.off = 0
	if c.qHead == len(c.q) {
		c.q, c.qHead = c.q[:0], 0
	}
}

// onSuspend: the channel's packets stop (a Pause, or the close), and it
// waits for every packet indicated to be completed. The unread data
// moves into copies of its own, so that it stays readable; this is the
// one copy the receive path makes, and only here.
func (c *Conn) onSuspend(*channel.Channel) {
	var done []*channel.Packet
	c.rmu.Lock()
	for i := c.qHead; i < len(c.q); i++ {
		h := &c.q[i]
		if h.pk == nil {
			continue
		}
		h.data = bytes.Clone(h.data)
		done = append(done, h.pk)
		h.pk = nil
	}
	if len(done) > 0 {
		c.copies += len(done)
		c.setQuotaLocked()
	}
	// Packets held for the direct function wait for a batch's end that
	// does not come now: the Read takes them.
	unread := c.qHead < len(c.q)
	c.deferred = false
	c.rmu.Unlock()
	for _, p := range done {
		p.Complete(nil)
	}
	if unread {
		c.wakeReader()
	}
}

// onClosed: the channel closed. Reads return what was received, then
// io.EOF if the end of stream came, else ErrChannelClosed; writes fail.
func (c *Conn) onClosed(*channel.Channel) {
	c.rmu.Lock()
	c.chClosed = true
	c.rmu.Unlock()
	c.goneOnce.Do(func() { close(c.gone) })
	c.wakeReader()
}

// onIncomingStopped: the channel stopped reading for good, a packet
// past its limits (larger than a pipe packet can be) or a broken ring.
// The receive side fails, after the data before.
func (c *Conn) onIncomingStopped(_ *channel.Channel, err error) {
	c.rmu.Lock()
	if c.rerr == nil {
		c.rerr = fmt.Errorf("%w: the channel stopped reading: %w", ErrMalformed, err)
	}
	c.rmu.Unlock()
	c.wakeReader()
}

// dropHeld completes every packet held unread and lets later ones be
// completed as they come: Close.
func (c *Conn) dropHeld() {
	c.rmu.Lock()
	c.rclosed = true
	var done []*channel.Packet
	for i := c.qHead; i < len(c.q); i++ {
		if p := c.q[i].pk; p != nil {
			done = append(done, p)
		}
	}
	clear(c.q)
	c.q, c.qHead, c.off = c.q[:0], 0, 0
	c.rmu.Unlock()
	for _, p := range done {
		p.Complete(nil)
	}
	c.wakeReader()
}

// uncopy counts a copied entry read to its end: the channel may hold one
// more packet. Must hold rmu.
func (c *Conn) uncopy() {
	if c.copies > 0 {
		c.copies--
		c.setQuotaLocked()
	}
}

// setQuotaLocked sets the channel's transaction quota to the packets the
// Conn may hold beside its copies: at least one, so that the stream goes
// on, and all of them (which lifts the cap) once no copy is left. Under
// rmu, so that two updates cannot land in the wrong order; the channel
// calls the Conn under none of its locks. Must hold rmu.
func (c *Conn) setQuotaLocked() {
	c.ch.SetTransactionQuota(max(1, c.maxPackets-c.copies)) //nolint:errcheck // never below 1
}
