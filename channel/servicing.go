package channel

import "sort"

// ServicingView is a server channel's servicing surface: what a host
// that hands its channels to another process (pause, save, exec or spawn
// a successor, restore, start) needs beyond KMCL's functions, which keep
// the Channel's own method set. Its methods are govmbus extensions, named
// apart so that a driver written against KMCL's API meets only KMCL's
// names on Channel; the VSP that supports servicing (a device's own
// servicing methods, its Suspend callback) and the servicing daemon use
// them. A view is a value holding its channel: making one costs nothing.
type ServicingView struct{ c *Channel }

// Servicing is c's servicing view.
func (c *Channel) Servicing() ServicingView { return ServicingView{c} }

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
func (v ServicingView) StopIndications() {
	c := v.c
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
	c.rxParked = c.rxGone || (canSkip && c.rxSleeping.Load())
	parked := c.rxParked
	c.mu.Unlock()
	if !parked {
		c.wakeRx(ep)
	}
}

// StartHeld is Start without the packets: Started runs and the channel
// counts as started, but its incoming queue goes live, and PostStarted
// runs, only at Release. A servicing's successor starts every restored
// channel this way and then releases them all at once, so that the
// traffic of the first channels, and of the peers they wake, does not
// compete for the CPUs with the start of the others. Pause and Disable
// before Release end the hold; a channel not open yet starts as with
// Start when it opens.
func (v ServicingView) StartHeld() error { return v.c.setRunning("StartHeld", true, reqStartHeld) }

// Release makes a channel started by StartHeld live: its receive loop
// reads the incoming ring from now on, its peer is signalled if owed, and
// PostStarted follows on the worker. It does no more than that, so that
// releasing many channels in a row is quick. Release of a channel that is
// not held does nothing. It may be called from any goroutine, but not
// from a state callback.
func (v ServicingView) Release() {
	c := v.c
	c.mu.Lock()
	if !c.flow.held() || c.ep == nil {
		c.mu.Unlock()
		return
	}
	post := c.flow == flowHeldPost
	c.goLiveLocked(c.ep)
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
func (v ServicingView) Relinquish() error {
	c := v.c
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

// QueuedPackets calls fn for each outgoing packet that waits in the send
// queue for ring space, in queue order: the packets a save would record as
// queued rather than in flight. fn runs under the channel's send lock, so
// no packet leaves the queue meanwhile; it must not call into the channel
// (no Send, Complete, Allocate or Free). A driver's Suspend callback uses
// it to let go of what it tied to a queued packet: once the packet is out
// of the queue, its completion routine runs after this call returned.
func (v ServicingView) QueuedPackets(fn func(p *OutPacket)) {
	c := v.c
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	for q := c.qHead; q != nil; q = q.next {
		if q.out != nil {
			fn(q.out)
		}
	}
}

// SetPauseWaitsForRestartable makes Pause wait for restartable packets
// as for any other (with wait true), so that a save that follows records
// none of them (kind 0x0005, channel-restart): for a host that hands its
// state to a program that predates that kind and would refuse it, such as
// a servicing's rollback to an older release. What the packets' drivers
// complete meanwhile goes to the ring, or is saved as a queued completion
// (0x0004) if the ring is full. A driver that holds back the work of a
// restartable packet while its channel is paused (blk's flusher does)
// must not while this is set (PauseWaitsForRestartable tells it), or the
// Pause never returns. It takes effect at the next Pause and lasts until
// set otherwise; it is safe for concurrent use.
func (v ServicingView) SetPauseWaitsForRestartable(wait bool) { v.c.waitRestarts.Store(wait) }

// PauseWaitsForRestartable reports what SetPauseWaitsForRestartable set
// last (false at first).
func (v ServicingView) PauseWaitsForRestartable() bool { return v.c.waitRestarts.Load() }

// RestoredMappings are the GPADLs a restored channel had mapped whose
// views have not been rebuilt yet: MapGpadl of each gives the view again.
func (v ServicingView) RestoredMappings() []uint32 {
	c := v.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]uint32, 0, len(c.remap))
	for id := range c.remap {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
