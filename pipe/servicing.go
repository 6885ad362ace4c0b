package pipe

import "github.com/govmbus/govmbus/channel"

// A servicing host carries a byte-mode Conn across as its owner's state
// rather than the channel's: the owner stops reading and writing, pauses
// the channel (its Suspend moves the data held unread into copies and
// completes the packets, so the channel's state holds none of them),
// saves the channel, and keeps Unread and which ends were passed. The
// successor restores the channel, makes a new Conn on it and tells it
// those ends (Restored); the unread bytes are its owner's to deliver
// first.

// Unread appends to dst the data received and not read yet, oldest
// first, and reports whether the peer's end of stream came after it. It
// does not consume: a servicing that fails goes on reading the same
// bytes. Call it with no Read running, after the channel's Pause.
func (c *Conn) Unread(dst []byte) ([]byte, bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	off := c.off
	for i := c.qHead; i < len(c.q); i++ {
		dst = append(dst, c.q[i].data[off:]...)
		off = 0
	}
	return dst, c.rfin
}

// UnreadLen is the length of what Unread would append.
func (c *Conn) UnreadLen() int {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	n := -c.off
	for i := c.qHead; i < len(c.q); i++ {
		n += len(c.q[i].data)
	}
	return max(n, 0)
}

// Restored readies a new Conn on a channel a servicing restored, which
// does not open again: it is open, in the channel's pipe mode, and the
// ends passed before the servicing stay passed. finReceived: the peer's
// end of stream came (Read returns io.EOF; a packet after it is
// malformed). finSent: this side's was sent (CloseWrite does nothing,
// Write fails, Close sends none). Call it before the channel starts.
func (c *Conn) Restored(finReceived, finSent bool) {
	mode, _ := c.ch.PipeMode()
	c.message.Store(mode == channel.PipeMessage)
	c.openOnce.Do(func() { close(c.opened) })
	c.rmu.Lock()
	c.rfin = finReceived
	c.rmu.Unlock()
	c.wmu.Lock()
	c.wclosed = finSent
	c.wmu.Unlock()
}
