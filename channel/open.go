package channel

import (
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// openEndpoint sets up the rings of a channel being opened. The Opened
// callback runs next; the receive goroutine starts only if it succeeds.
func (c *Channel) openEndpoint(in, out []byte, inEv, outEv *transport.Event, mem *guestmem.Memory, gt *host.GpadlTable, tap epTap) (*endpoint, error) {
	r, err := ring.NewReader(in)
	if err != nil {
		return nil, err
	}
	w, err := ring.NewWriter(out)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{r: r, w: w, in: inEv, out: outEv, mem: mem, gpadls: gt, rxDone: make(chan struct{}), cap: tap}
	c.mu.Lock()
	c.ep = ep
	c.flowLocked(flowOff)
	c.rxExit, c.rxParked, c.rxFailed, c.rxBlocked, c.rxGone = false, true, false, false, false
	c.rxFailedA.Store(false)
	c.rxStopTold = false
	c.rxStopReason, c.rxStopErr = "", nil
	c.mu.Unlock()
	c.sendMu.Lock()
	c.sendEP = ep
	c.sendMu.Unlock()
	return ep, nil
}

// goLive opens the channel whose Opened callback succeeded and starts
// the receive goroutine of its endpoint. On the worker, which alone
// moves a channel that waits for its open: the move is refused only if
// the channel does not wait for one any more, and then nothing started.
func (c *Channel) goLive(ep *endpoint) error {
	c.mu.Lock()
	err := c.moveLocked("open", evOpen)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	go c.rxLoop(ep)
	// Packets queued before the channel opened (sendBeforeOpen) go
	// out now that Opened succeeded.
	done, sig := c.flush(ep)
	c.finishSent(ep, done, sig)
	return nil
}

// dropEndpoint forgets an endpoint whose open failed.
func (c *Channel) dropEndpoint() {
	c.sendMu.Lock()
	c.sendEP = nil
	c.sendMu.Unlock()
	c.mu.Lock()
	c.ep = nil
	c.mu.Unlock()
}

// closeOpen closes an open channel: packets stop (Suspend), the receive
// goroutine ends, outgoing packets fail with StatusDeviceRemoved, the
// subchannels close, the client closes its side, Closed runs, and the
// GPADLs left are destroyed or unmapped. It reports whether the channel
// was open. On the worker.
func (c *Channel) closeOpen() bool {
	c.mu.Lock()
	ep := c.ep
	wasOpen := c.ph.open()
	if ep != nil && wasOpen {
		// The guest closed the channel (or went away) under an open
		// save, which no call could refuse: the state is stale.
		c.staleSaveLocked()
	}
	subs := make([]*Channel, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	if ep == nil || !wasOpen {
		return false
	}
	c.mu.Lock()
	c.unholdLocked()
	c.mu.Unlock()
	c.deactivate()
	// Restartable packets too, also on a channel paused before: the
	// driver may still complete them, and the pool is reset below.
	c.waitIdle(true)
	c.mu.Lock()
	c.rxExit = true
	c.cond.Broadcast() // a goroutine whose event failed waits for rxExit
	c.mu.Unlock()
	c.wakeRx(ep)
	<-ep.rxDone
	c.drainWork()
	c.failOutgoing()
	c.dropHeld()

	for _, s := range subs {
		select {
		case s.primaryClosed <- struct{}{}:
		default:
		}
	}
	if !c.server {
		c.mu.Lock()
		gch := c.gch
		c.mu.Unlock()
		ctx, cancel := teardownContext()
		gch.Close(ctx) //nolint:errcheck // the host may be gone or silent; the pages then stay allocated
		cancel()
	}
	c.runCallback(c.cfg.callbacks.Closed)
	c.destroyGpadls()

	c.mu.Lock()
	// Open until here, and only the worker moves an open channel: the
	// move (to Closed on a client, back to waiting on a server) is in
	// both diagrams.
	c.moveLocked("close", evShut) //nolint:errcheck // see above
	c.ep, c.hc, c.gch = nil, nil, nil
	c.inFree = append(c.inFree[:0], c.inAll...)
	for _, p := range c.inAll {
		p.state, p.restart = pktFree, false
	}
	c.outstanding = 0
	clear(c.restarts)
	c.restarts = c.restarts[:0]
	c.redo = nil
	c.mu.Unlock()
	if !c.server {
		// A closed client does not open again: what was queued while it
		// closed (its phase still open, sendEP already nil) fails now.
		c.failOutgoing()
	} else {
		c.sendMu.Lock()
		c.sendEP = nil
		c.sendMu.Unlock()
	}
	return true
}
