package channel

import "context"

// Enable makes the channel live and returns at once (KMCL
// VmbChannelEnable): a server channel is offered to its guest; a client
// channel starts waiting (in the background) for the target offer and
// opens it. A subchannel can be enabled only while its primary is open.
func (c *Channel) Enable() error {
	if err := c.lifecycle("Enable"); err != nil {
		return err
	}
	defer c.life.Unlock()
	c.mu.Lock()
	// Only the checks below stand between this look and the move (life
	// keeps every other lifecycle call out): a channel it lets through
	// is disabled when it moves.
	switch {
	case c.ph == phFreed:
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Enable after Cleanup")
	case !c.ph.disabled():
		st := c.ph.public()
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Enable: channel is %v", st)
	case c.rest != nil:
		// RestoreFromBuffer answered MORE_PROCESSING_REQUIRED: enabling
		// now would offer the channel without the state it was given.
		// Dropped, so that the caller can restore again or enable anew.
		c.rest = nil
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Enable: the restore is incomplete (RestoreFromBuffer wants more chunks); it is dropped")
	}
	c.mu.Unlock()
	cfg := &c.cfg
	switch {
	case cfg.process == nil:
		return fail(StatusInvalidParameter, "Enable: no process-packet callback")
	case c.server && cfg.guest == nil:
		return fail(StatusInvalidParameter, "Enable: server channel names no guest (SetGuest)")
	case !c.server && cfg.client == nil:
		return fail(StatusInvalidParameter, "Enable: client channel names no guest client (SetClient)")
	case cfg.primary == nil && cfg.ifType.IsZero():
		return fail(StatusInvalidParameter, "Enable: no interface type (SetInterface)")
	}
	if p := cfg.primary; p != nil {
		p.mu.Lock()
		ok := p.ph.open()
		if ok {
			if p.subs == nil {
				p.subs = make(map[*Channel]struct{})
			}
			p.subs[c] = struct{}{}
		}
		p.mu.Unlock()
		if !ok {
			return fail(StatusInvalidDeviceState, "Enable: primary channel is not open")
		}
	}

	c.prepare()
	// Only a client's worker waits for the outside (its offer, the
	// open), with a context Disable cancels; a server's has none to
	// cancel, and a servicing successor enables every server in its
	// blackout.
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !c.server {
		ctx, cancel = context.WithCancel(ctx)
	}
	c.mu.Lock()
	// A Pause while disabled (phArmed) comes into force here: the
	// channel opens but no packet flows until Start.
	c.moveLocked("Enable", evEnable) //nolint:errcheck // disabled: checked above
	c.openCancel = cancel
	c.mu.Unlock()
	go c.worker(ctx)

	if c.server {
		st := c.takeRestored()
		if st != nil && cfg.serverFlags&ServerForceNewChannel == 0 {
			return c.enableRestored(st)
		}
		if st != nil {
			// FORCE_NEW_CHANNEL: the guest drops the old instance (a
			// rescind) and gets a new offer; what was under way on
			// the old one fails.
			cfg.guest.Abandon(c.dev.Offer()) //nolint:errcheck // nothing restored on the bus: nothing to abandon
			defer c.failRestored(st)
		}
		o, err := cfg.guest.Offer(&c.dev)
		if err != nil {
			c.stopWorker()
			c.leavePrimary()
			c.mu.Lock()
			c.moveLocked("Enable", evDisable) //nolint:errcheck // always in the diagrams
			c.mu.Unlock()
			return fail(StatusInvalidDeviceState, "Enable: offer: %w", err)
		}
		c.mu.Lock()
		c.offered = o
		c.mu.Unlock()
	}
	return nil
}

// enableRestored re-attaches a restored server channel to the channel
// the guest still has. Must hold life; the worker runs.
func (c *Channel) enableRestored(st *restoredState) error {
	o, hc, err := c.cfg.guest.Reattach(&c.dev)
	if err != nil {
		c.stopWorker()
		c.leavePrimary()
		c.mu.Lock()
		c.moveLocked("Enable", evDisable) //nolint:errcheck // always in the diagrams
		c.restored = st                   // Enable may be tried again
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Enable: re-attach: %w", err)
	}
	c.mu.Lock()
	c.offered = o
	c.mu.Unlock()
	if hc == nil || st.info.Open == nil {
		// The guest closed the channel while it waited (or it was not
		// open): nothing saved can continue.
		c.failRestored(st)
		return nil
	}
	return c.callState(reqReattach, hc, st)
}

// prepare allocates what an enabled channel needs: the pool of incoming
// packets and the worker's channels.
func (c *Channel) prepare() {
	n := c.cfg.maxPacketCount
	if len(c.inAll) == 0 || len(c.inAll) > n {
		c.inAll = nil
		c.mu.Lock()
		c.growPoolLocked()
		c.mu.Unlock()
	}
	c.inFree = append(c.inFree[:0], c.inAll...)
	for _, p := range c.inAll {
		p.state = pktFree
		if cap(p.ctx) < c.cfg.contextSize {
			p.ctx = make([]byte, c.cfg.contextSize)
		}
		p.ctx = p.ctx[:c.cfg.contextSize]
	}
	c.outstanding = 0
	c.ctl = make(chan request)
	c.work.reset()
	c.lost = make(chan struct{}, 1)
	c.primaryClosed = make(chan struct{}, 1)
	c.released = make(chan struct{}, 1)
	c.idle = make(chan struct{}, 1)
	c.workerDone = make(chan struct{})
}

func (c *Channel) leavePrimary() {
	if p := c.cfg.primary; p != nil {
		p.mu.Lock()
		delete(p.subs, c)
		p.mu.Unlock()
	}
}

// Disable closes (client) or revokes (server) the channel and blocks until
// it is torn down: the Suspend and Closed callbacks have run, every
// goroutine the channel started has ended (KMCL VmbChannelDisable).
// Disabling a disabled channel does nothing.
func (c *Channel) Disable() error {
	if err := c.lifecycle("Disable"); err != nil {
		return err
	}
	defer c.life.Unlock()
	c.mu.Lock()
	if !c.ph.enabled() {
		c.mu.Unlock()
		return nil
	}
	if err := c.refuseInSave("Disable"); err != nil {
		c.mu.Unlock()
		return err
	}
	offered, cancel := c.offered, c.openCancel
	c.mu.Unlock()
	cancel()
	if offered != nil {
		// The host closes an open channel (Device.Close) before it
		// sends the rescind, then waits for the guest to release the id.
		offered.Rescind(context.Background()) //nolint:errcheck // no deadline: returns once released or the guest is gone
	}
	c.call(reqClose, nil) //nolint:errcheck // closes what is still open
	c.stopWorker()
	c.failOutgoing() // packets queued while the channel never opened
	c.leavePrimary()
	c.mu.Lock()
	c.moveLocked("Disable", evDisable) //nolint:errcheck // always in the diagrams
	c.offered, c.openCancel = nil, nil
	c.staleSaveLocked() // a SaveBegin that overtook the check above
	c.mu.Unlock()
	return nil
}

// Cleanup frees a channel (KMCL VmbChannelCleanup); an enabled channel is
// disabled first. The channel cannot be used afterwards. A channel that
// holds a restored state it was never enabled with completes the packets
// restored into it with StatusDeviceRemoved.
func (c *Channel) Cleanup() error {
	if err := c.Disable(); err != nil {
		return err
	}
	if err := c.lifecycle("Cleanup"); err != nil {
		return err
	}
	defer c.life.Unlock()
	c.mu.Lock()
	// Refused only if another goroutine enabled the channel again
	// since Disable returned.
	if err := c.moveLocked("Cleanup", evCleanup); err != nil {
		c.mu.Unlock()
		return err
	}
	c.inAll, c.inFree = nil, nil
	st := c.restored
	c.restored = nil
	c.mu.Unlock()
	if st != nil {
		// Restored and never enabled: the transactions it brought back
		// end here, as those of a channel the guest lost.
		c.failRestored(st)
	}
	return nil
}
