package channel

// StopIndications is the first half of Pause, for a caller that pauses
// many channels at once (a servicing host): it tells the receive loop to
// stop indicating packets and returns at once, without waiting for the
// loop or for a worker. Stopping every channel this way first stops all
// traffic at once, where the Pause calls that follow would each wait for
// channels still busy with packets. No packet sent after it returns is
// indicated: the loop looks at the flag before each read and again after
// it, and a packet read meanwhile goes back to the ring unindicated. A
// packet the loop had read and passed before the call may still be
// indicated just after it returns; Pause waits for that packet like any
// other. Pause must follow (or Start, which
// lets packets flow again without the callbacks, since Suspend did not
// run). On a channel that is not running it does nothing. It is safe for
// concurrent use, inside callbacks too.
func (c *Channel) StopIndications() {
	canSkip := !c.sendQueued()
	c.mu.Lock()
	ep := c.ep
	if ep == nil || c.flow != flowLive {
		c.mu.Unlock()
		return
	}
	c.flowLocked(flowStopped)
	// A loop asleep is parked as it is: no wake-up (an eventfd write
	// and a goroutine to schedule, per channel, in a servicing's pause).
	c.rxParked = canSkip && c.rxSleeping.Load()
	parked := c.rxParked
	c.mu.Unlock()
	if !parked {
		ep.in.Signal() //nolint:errcheck // see maybeActivate
	}
}

// sendQueued reports whether packets wait in the send queue. A receive
// loop woken to park flushes the queue on the way; one that is asleep
// when its packets stop is counted as parked without a wake-up only if
// there is nothing to flush, so the queue a save finds is the same.
// Anything queued after the look is flushed by its sender.
func (c *Channel) sendQueued() bool {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.qHead != nil
}

// StartHeld is Start without the packets: Started runs and the channel
// counts as started, but its incoming queue goes live, and PostStarted
// runs, only at Release. A servicing's successor starts every restored
// channel this way and then releases them all at once, so that the
// traffic of the first channels, and of the peers they wake, does not
// compete for the CPUs with the start of the others. Pause and Disable
// before Release end the hold; a channel not open yet starts as with
// Start when it opens.
func (c *Channel) StartHeld() error { return c.setRunning("StartHeld", true, reqStartHeld) }

// unholdLocked ends a hold (StartHeld) that Release did not: for
// deactivate, the held channel is as one whose indications stopped, so
// that Suspend follows the Started it had.
func (c *Channel) unholdLocked() {
	if c.flow.held() {
		c.flowLocked(flowStopped)
	}
}

// Release makes a channel started by StartHeld live: its receive loop
// reads the incoming ring from now on, its peer is signalled if owed, and
// PostStarted follows on the worker. It does no more than that, so that
// releasing many channels in a row is quick. Release of a channel that is
// not held does nothing. It may be called from any goroutine, but not
// from a state callback.
func (c *Channel) Release() {
	c.mu.Lock()
	if !c.flow.held() || c.ep == nil {
		c.mu.Unlock()
		return
	}
	ep, hc, post := c.ep, c.hc, c.flow == flowHeldPost
	c.redoLocked()
	c.flowLocked(flowLive)
	c.mu.Unlock()
	c.resumeWrites()
	ep.in.Signal() //nolint:errcheck // see maybeActivate
	if hc != nil && owed(hc.In, hc.Out) {
		ep.out.Signal() //nolint:errcheck // see maybeActivate
	}
	if post {
		select {
		case c.released <- struct{}{}:
		default:
		}
	}
}

// Relinquish ends the receive goroutine of a paused channel whose state
// was saved and handed to another process (a spawned servicing), which
// serves the channel from now on. The goroutine waits on the channel's
// event even while the channel is paused, and a read of it there would
// take the other process's wake-up: after Relinquish this process reads
// nothing more from the event. It returns once the goroutine is gone. The
// channel is of no further use but to be discarded with the process; a
// channel not paused, or not open, is left as it is
// (STATUS_INVALID_DEVICE_STATE).
func (c *Channel) Relinquish() error {
	c.mu.Lock()
	ep := c.ep
	if ep == nil || c.ph != phPaused {
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Relinquish: the channel is not open and paused")
	}
	c.rxExit = true
	c.cond.Broadcast() // a goroutine whose event failed waits for rxExit
	c.mu.Unlock()
	// Not a signal to wake the goroutine: the other process's reader
	// could take it. The wait ends without reading the count.
	ep.in.StopWaits()
	<-ep.rxDone
	return nil
}
