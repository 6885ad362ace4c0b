package channel

// Pause stops the packets of an enabled channel and blocks until every
// packet indicated so far was completed (KMCL VmbChannelPause); the
// Suspend callback runs if packets were flowing. Start resumes. On a
// disabled channel it arms a paused start, as the KMCL page says Pause
// does there: the next Enable brings the channel up paused (a client
// opens but does not start; a server stays paused after the guest opens),
// and Start lets packets flow.
func (c *Channel) Pause() error { return c.setRunning("Pause", false, reqPause) }

// quiet reports whether the receive loop holds back its signals to the
// peer: a server channel whose packets are stopped (Pause,
// StopIndications) gives them at Start, which signals whatever the rings
// say the guest is owed (maybeActivate). A guest woken meanwhile has
// nothing to gain, and its wake-up preempts the signalling thread, which
// holds one of the few cores a servicing's pause needs: with 64 channels
// stopping at once that cost the pause up to 30 ms. A client channel
// signals as ever: its Start does not look for owed signals.
func (c *Channel) quiet() bool { return c.server && !c.rxRun.Load() }

// Start lets packets flow (KMCL VmbChannelStart): after Pause, and on a
// server channel once after Enable — a server channel's packets never
// flow before its first Start. If the channel is open, the Started and
// PostStarted callbacks run before Start returns.
func (c *Channel) Start() error { return c.setRunning("Start", true, reqStart) }

// setRunning is Pause (run false) and Start (run true): on an enabled
// channel that is not open it only records the wish; on an open one the
// worker makes the transition and runs the callbacks.
func (c *Channel) setRunning(what string, run bool, req reqKind) error {
	if err := c.lifecycle(what); err != nil {
		return err
	}
	defer c.life.Unlock()
	ev := evPause
	if run {
		ev = evStart
	}
	c.mu.Lock()
	if c.ph.disabled() && !run {
		err := c.moveLocked(what, ev) // armed for the next Enable
		c.mu.Unlock()
		return err
	}
	if !c.ph.waiting() && !c.ph.open() {
		st := c.ph.public()
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "%s: channel is %v", what, st)
	}
	if run {
		if err := c.refuseInSave(what); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	if !c.ph.open() {
		// Not open: only the wish is recorded, for the open.
		err := c.moveLocked(what, ev)
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	return c.call(req, nil)
}

// pauseOpen is Pause of an open channel, on the worker: packets stop
// (deactivate) if they flowed, and the write gate closes.
func (c *Channel) pauseOpen() error {
	c.mu.Lock()
	wasRunning := c.ph == phActive || c.ph == phOpened
	// Refused only for a channel that closed for good since setRunning
	// looked.
	if err := c.moveLocked("Pause", evPause); err != nil {
		c.mu.Unlock()
		return err
	}
	c.unholdLocked()
	c.mu.Unlock()
	select {
	case <-c.released: // a Release the pause overtook
	default:
	}
	if wasRunning {
		c.deactivate()
	}
	c.stopWrites()
	return nil
}

// startOpen is Start (StartHeld with held) of an open channel, on the
// worker.
func (c *Channel) startOpen(held bool) error {
	c.mu.Lock()
	err := c.moveLocked("Start", evStart) // refused as in pauseOpen
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.activate(held)
	return nil
}

// maybeActivate starts the packets of an open, started channel that is not
// running yet: Started, then the incoming queue goes live, then
// PostStarted. On the worker.
func (c *Channel) maybeActivate() { c.activate(false) }

// activate is maybeActivate; held stops it before the incoming queue goes
// live, which Release then does (StartHeld).
func (c *Channel) activate(held bool) {
	c.mu.Lock()
	ep := c.ep
	if c.ph == phOpened {
		// A client that just opened, on the worker's same turn: its
		// packets start now, with Started.
		c.moveLocked("open", evRun) //nolint:errcheck // in the client's diagram
	}
	run := c.ph == phActive && (c.flow == flowOff || c.flow == flowStopped)
	if run && ep != nil && c.flow == flowStopped {
		// Stopped but never suspended: the driver saw no pause.
		if held {
			c.flowLocked(flowHeld)
			c.mu.Unlock()
			return
		}
		// The receive loop held back its signals since the stop
		// (quiet), as for a pause.
		c.goLiveLocked(ep)
		return
	}
	c.mu.Unlock()
	if !run || ep == nil {
		return
	}
	c.runCallback(c.cfg.callbacks.Started)
	c.mu.Lock()
	if held {
		c.flowLocked(flowHeldPost)
		c.mu.Unlock()
		return
	}
	c.goLiveLocked(ep)
	c.runCallback(c.cfg.callbacks.PostStarted)
}

// goLiveLocked lets the incoming queue of ep flow and unlocks mu: the
// packets to redo are queued again, writes resume, the receive loop is
// woken, and the peer is signalled if its rings say it is owed a signal —
// one lost with a predecessor process (reattach leaves it to this point),
// or one for packets written while paused or stopped (the receive loop
// was quiet). An extra signal costs the guest a look. Must hold mu.
func (c *Channel) goLiveLocked(ep *endpoint) {
	c.redoLocked()
	c.flowLocked(flowLive)
	hc := c.hc
	c.mu.Unlock()
	c.resumeWrites()
	c.wakeRx(ep)
	if hc != nil && owed(hc.In, hc.Out) {
		ep.signal()
	}
}

// deactivate stops the packets of a running channel: the receive loop
// stops indicating, queued work is done, Suspend runs, and every indicated
// packet is completed but the restartable ones (SetRestartable), which
// closeOpen waits for as well, and so does deactivate itself once
// SetPauseWaitsForRestartable asked it to. On the worker.
func (c *Channel) deactivate() {
	canSkip := !c.sendQueued()
	c.mu.Lock()
	ep := c.ep
	live := c.flow == flowLive // else StopIndications did the first step
	if ep == nil || (!live && c.flow != flowStopped) {
		c.mu.Unlock()
		return
	}
	c.flowLocked(flowOff)
	wake := false
	if live {
		// A loop whose event is gone parked for good: it is not woken
		// again, and must not be waited for.
		c.rxParked = c.rxGone || (canSkip && c.rxSleeping.Load()) // as in StopIndications
		wake = !c.rxParked
	}
	c.mu.Unlock()
	if wake {
		c.wakeRx(ep)
	}
	c.mu.Lock()
	for !c.rxParked {
		c.cond.Wait()
	}
	c.mu.Unlock()
	c.drainWork()
	c.runCallback(c.cfg.callbacks.Suspend)
	c.waitIdle(c.waitRestarts.Load())
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

// unholdLocked ends a hold (StartHeld) that Release did not: for
// deactivate, the held channel is as one whose indications stopped, so
// that Suspend follows the Started it had.
func (c *Channel) unholdLocked() {
	if c.flow.held() {
		c.flowLocked(flowStopped)
	}
}
