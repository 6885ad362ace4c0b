package channel

import "slices"

// initialPool is how many incoming packet objects an enabled channel has
// at first; the pool doubles as the traffic needs, up to
// SetMaxPacketCount.
const initialPool = 16

// growPoolLocked adds free packet objects to the incoming pool, doubling
// it (the first call makes initialPool), and reports whether it could: a
// pool at SetMaxPacketCount does not grow. The pool grows as the packets
// come instead of being allocated whole at Enable: a servicing successor
// enables every channel in its blackout, on a heap it has yet to grow
// (every new page a fault), and most channels never need the whole pool.
// Must hold mu, or own the channel before its worker runs.
func (c *Channel) growPoolLocked() bool {
	limit := c.cfg.maxPacketCount
	have := len(c.inAll)
	if have >= limit {
		return false
	}
	add := min(max(have, initialPool), limit-have)
	// One allocation each for the packets, their contexts and the two
	// lists' growth, not one per packet or per append doubling: a
	// servicing successor makes every pool in its blackout.
	pool := make([]Packet, add)
	cs := c.cfg.contextSize
	var ctx []byte
	if cs > 0 {
		ctx = make([]byte, add*cs)
	}
	if cap(c.inAll) == 0 && cap(c.inFree) == 0 {
		// The first pool: both lists in one block (a list that
		// outgrows its part moves out on its own).
		lists := make([]*Packet, 2*add)
		c.inAll, c.inFree = lists[:0:add], lists[add:add]
	}
	c.inAll = slices.Grow(c.inAll, add)
	c.inFree = slices.Grow(c.inFree, add)
	for i := range pool {
		p := &pool[i]
		p.c = c
		p.q.in = p
		p.state = pktFree
		if cs > 0 {
			p.ctx = ctx[i*cs : (i+1)*cs : (i+1)*cs]
		}
		c.inAll = append(c.inAll, p)
		c.inFree = append(c.inFree, p)
	}
	return true
}
