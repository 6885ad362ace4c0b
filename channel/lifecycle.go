package channel

import (
	"context"
	"slices"
	"time"

	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// reqKind is a lifecycle request to the worker goroutine.
type reqKind uint8

const (
	reqStart reqKind = iota
	reqStartHeld
	reqPause
	reqOpen     // server: host.Device.Open
	reqClose    // server: host.Device.Close; client: Disable
	reqStop     // end the worker
	reqReattach // server: continue a restored open channel
)

type request struct {
	kind  reqKind
	hc    *host.Channel
	st    *restoredState // reqReattach
	reply chan error
}

// workItem is work for the worker goroutine: a packet to (re)process, or
// the end of a batch in blocking mode.
type workItem struct {
	p        *Packet
	batchEnd int
}

// call hands a request to the worker and waits for its answer.
func (c *Channel) call(kind reqKind, hc *host.Channel) error {
	return c.callState(kind, hc, nil)
}

func (c *Channel) callState(kind reqKind, hc *host.Channel, st *restoredState) error {
	r := request{kind: kind, hc: hc, st: st, reply: make(chan error, 1)}
	c.ctl <- r
	return <-r.reply
}

// runCallback runs a state callback with lifecycle calls refused.
func (c *Channel) runCallback(fn func(*Channel)) {
	if fn == nil {
		return
	}
	c.enterCallback()
	defer c.inCallback.Add(-1)
	fn(c)
}

func (c *Channel) runOpened() error {
	fn := c.cfg.callbacks.Opened
	if fn == nil {
		return nil
	}
	c.enterCallback()
	defer c.inCallback.Add(-1)
	return fn(c)
}

// enterCallback marks a state callback running, on the worker. The
// worker's goroutine id must be known by then; reading it takes a stack
// trace (goid), so a worker reads it neither when it starts (a servicing
// successor starts every worker in its blackout) nor at all if its
// channel has no state callbacks (every blk server): it reads it
// workerIDDelay after it starts, or here if a callback comes first. It
// is stored before inCallback rises, so a lifecycle call that sees a
// callback running sees the worker's id too.
func (c *Channel) enterCallback() {
	c.learnWorkerID()
	c.inCallback.Add(1)
}

// workerIDDelay is how long a worker whose channel has state callbacks
// runs before it reads its goroutine id (goid) unasked: well past the
// blackout of a servicing that started it (tens of milliseconds), and
// long before the next one, whose Pause runs the Suspend callback. A
// restored echo server's first callback is that Suspend: without this
// its worker paid the stack trace inside the next blackout, in every
// channel at once.
const workerIDDelay = 100 * time.Millisecond

// learnWorkerID reads the worker's goroutine id if it is not known yet.
// Only the worker calls it.
func (c *Channel) learnWorkerID() {
	if c.workerID.Load() == 0 {
		c.workerID.Store(goid())
	}
}

// hasStateCallbacks reports whether the channel has a state callback,
// and so a worker that will need its goroutine id.
func (c *Channel) hasStateCallbacks() bool {
	cb := &c.cfg.callbacks
	return cb.Opened != nil || cb.Closed != nil || cb.Suspend != nil || cb.Started != nil || cb.PostStarted != nil
}

// lifecycle guards a lifecycle call: refused from inside a state
// callback (on the worker goroutine), one at a time otherwise; a call from
// another goroutine while a callback runs waits for it. On success it
// holds life, which the caller unlocks (not through a returned func: a
// method value is an allocation per call, Enable's in a blackout).
func (c *Channel) lifecycle(what string) error {
	if c.inCallback.Load() > 0 && goid() == c.workerID.Load() {
		return fail(StatusInvalidDeviceState, "%s inside a state-change callback", what)
	}
	c.life.Lock()
	return nil
}

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
	switch {
	case c.cleaned:
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Enable after Cleanup")
	case c.enabled:
		st := c.stateLocked()
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "Enable: channel is %v", st)
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
		ok := p.open
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
	c.enabled, c.closed, c.open = true, false, false
	// A Pause while disabled comes into force here: the channel opens
	// but no packet flows until Start.
	c.paused = c.pauseArmed
	c.started = !c.server && !c.pauseArmed
	c.pauseArmed = false
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
			c.enabled, c.started = false, false
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
		c.enabled, c.started = false, false
		c.restored = st // Enable may be tried again
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

func (c *Channel) stopWorker() {
	c.call(reqStop, nil) //nolint:errcheck // always nil
	<-c.workerDone
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
	if !c.enabled {
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
	c.enabled, c.open, c.started, c.paused, c.closed = false, false, false, false, false
	c.offered, c.openCancel = nil, nil
	c.staleSaveLocked() // a SaveBegin that overtook the check above
	c.mu.Unlock()
	return nil
}

// Cleanup frees a channel (KMCL VmbChannelCleanup); an enabled channel is
// disabled first. The channel cannot be used afterwards.
func (c *Channel) Cleanup() error {
	if err := c.Disable(); err != nil {
		return err
	}
	if err := c.lifecycle("Cleanup"); err != nil {
		return err
	}
	defer c.life.Unlock()
	c.mu.Lock()
	c.cleaned = true
	c.inAll, c.inFree = nil, nil
	c.mu.Unlock()
	return nil
}

// Pause stops the packets of an enabled channel and blocks until every
// packet indicated so far was completed (KMCL VmbChannelPause); the
// Suspend callback runs if packets were flowing. Start resumes. On a
// disabled channel it arms a paused start, as the KMCL page says Pause
// does there: the next Enable brings the channel up paused (a client
// opens but does not start; a server stays paused after the guest opens),
// and Start lets packets flow.
func (c *Channel) Pause() error { return c.setRunning("Pause", false, reqPause) }

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
	if ep == nil || !c.rxWant {
		c.mu.Unlock()
		return
	}
	c.rxWant = false
	c.rxRun.Store(false)
	c.rxStopped = true
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
	if c.rxHeld {
		c.rxStopped = true
	}
	c.rxHeld, c.rxHeldPost = false, false
}

// Release makes a channel started by StartHeld live: its receive loop
// reads the incoming ring from now on, its peer is signalled if owed, and
// PostStarted follows on the worker. It does no more than that, so that
// releasing many channels in a row is quick. Release of a channel that is
// not held does nothing. It may be called from any goroutine, but not
// from a state callback.
func (c *Channel) Release() {
	c.mu.Lock()
	if !c.rxHeld || c.ep == nil {
		c.mu.Unlock()
		return
	}
	ep, hc, post := c.ep, c.hc, c.rxHeldPost
	c.rxHeld, c.rxHeldPost = false, false
	c.redoLocked()
	c.rxWant = true
	c.rxRun.Store(true)
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

// setRunning is Pause (run false) and Start (run true): on an enabled
// channel that is not open it only records the wish; on an open one the
// worker makes the transition and runs the callbacks.
func (c *Channel) setRunning(what string, run bool, req reqKind) error {
	if err := c.lifecycle(what); err != nil {
		return err
	}
	defer c.life.Unlock()
	c.mu.Lock()
	if !c.enabled && !c.cleaned && req == reqPause {
		c.pauseArmed = true
		c.mu.Unlock()
		return nil
	}
	if !c.enabled || c.closed {
		st := c.stateLocked()
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "%s: channel is %v", what, st)
	}
	if run {
		if err := c.refuseInSave(what); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	if !c.open {
		c.started, c.paused = run, !run
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	return c.call(req, nil)
}

// worker is the channel's control goroutine, from Enable to Disable: it
// opens a client channel, runs every lifecycle transition of an open
// channel and the state callbacks, and processes deferred packets (and,
// in blocking mode, all packets).
func (c *Channel) worker(ctx context.Context) {
	defer close(c.workerDone)
	defer c.workerID.Store(0) // set by learnWorkerID
	// learn fires workerIDDelay after the worker starts, if it will run
	// callbacks: then it reads its id, outside any blackout.
	var learn <-chan time.Time
	if c.hasStateCallbacks() {
		t := time.NewTimer(workerIDDelay)
		defer t.Stop()
		learn = t.C
	}
	for {
		if !c.server {
			c.clientTryOpen(ctx)
		}
		var rescinded <-chan struct{}
		c.mu.Lock()
		if c.gch != nil {
			rescinded = c.gch.Rescinded()
		}
		c.mu.Unlock()
		select {
		case r := <-c.ctl:
			switch r.kind {
			case reqStop:
				r.reply <- nil
				return
			case reqReattach:
				r.reply <- c.reattach(r.hc, r.st)
			case reqOpen:
				err := c.serverOpen(r.hc)
				r.reply <- err
				if err == nil {
					c.maybeActivate()
				}
			case reqClose:
				if r.hc == nil || c.currentHC() == r.hc {
					c.closeOpen()
				}
				r.reply <- nil
			case reqPause:
				c.mu.Lock()
				wasRunning := c.open && c.started
				c.started, c.paused = false, true
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
				r.reply <- nil
			case reqStart, reqStartHeld:
				c.mu.Lock()
				c.started, c.paused = true, false
				c.mu.Unlock()
				c.activate(r.kind == reqStartHeld)
				r.reply <- nil
			}
		case <-c.released:
			c.mu.Lock()
			live := c.open && c.rxWant
			c.mu.Unlock()
			if live {
				c.runCallback(c.cfg.callbacks.PostStarted)
			}
		case <-c.work.ready:
			c.doQueuedWork()
		case <-learn:
			learn = nil
			c.learnWorkerID()
		case <-rescinded:
			c.closeOpen()
		case <-c.lost:
			c.closeOpen()
		case <-c.primaryClosed:
			c.closeOpen()
			c.mu.Lock()
			c.closed = true
			c.mu.Unlock()
		}
	}
}

func (c *Channel) currentHC() *host.Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hc
}

// openEndpoint sets up the rings of a channel being opened. The Opened
// callback runs next; the receive goroutine starts only if it succeeds.
func (c *Channel) openEndpoint(in, out []byte, inEv, outEv *transport.Event, mem *guestmem.Memory, gt *host.GpadlTable) (*endpoint, error) {
	r, err := ring.NewReader(in)
	if err != nil {
		return nil, err
	}
	w, err := ring.NewWriter(out)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{r: r, w: w, in: inEv, out: outEv, mem: mem, gpadls: gt, rxDone: make(chan struct{})}
	c.mu.Lock()
	c.ep = ep
	c.rxWant, c.rxExit, c.rxParked, c.rxFailed, c.rxBlocked, c.rxStopped = false, false, true, false, false, false
	c.rxHeld, c.rxHeldPost = false, false
	c.rxStopReason, c.rxStopErr = "", nil
	c.rxRun.Store(false)
	c.mu.Unlock()
	c.sendMu.Lock()
	c.sendEP = ep
	c.sendMu.Unlock()
	return ep, nil
}

// goLive starts the receive goroutine of an endpoint whose Opened
// callback succeeded.
func (c *Channel) goLive(ep *endpoint) {
	c.mu.Lock()
	c.open = true
	c.mu.Unlock()
	go c.rxLoop(ep)
	// Packets queued before the channel opened (sendBeforeOpen) go
	// out now that Opened succeeded.
	done, sig := c.flush(ep)
	c.finishSent(ep, done, sig)
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

// maybeActivate starts the packets of an open, started channel that is not
// running yet: Started, then the incoming queue goes live, then
// PostStarted. On the worker.
func (c *Channel) maybeActivate() { c.activate(false) }

// activate is maybeActivate; held stops it before the incoming queue goes
// live, which Release then does (StartHeld).
func (c *Channel) activate(held bool) {
	c.mu.Lock()
	ep := c.ep
	run := c.open && c.started && !c.rxWant && !c.rxHeld
	if run && ep != nil && c.rxStopped {
		// Stopped but never suspended: the driver saw no pause.
		c.rxStopped = false
		if held {
			c.rxHeld, c.rxHeldPost = true, false
			c.mu.Unlock()
			return
		}
		c.redoLocked()
		c.rxWant = true
		c.rxRun.Store(true)
		hc := c.hc
		c.mu.Unlock()
		c.resumeWrites()
		ep.in.Signal() //nolint:errcheck // see below
		// The receive loop held back its signals since the stop
		// (quiet), as for a pause.
		if hc != nil && owed(hc.In, hc.Out) {
			ep.out.Signal() //nolint:errcheck // see below
		}
		return
	}
	c.mu.Unlock()
	if !run || ep == nil {
		return
	}
	c.runCallback(c.cfg.callbacks.Started)
	c.mu.Lock()
	if held {
		c.rxHeld, c.rxHeldPost = true, true
		c.mu.Unlock()
		return
	}
	c.redoLocked()
	c.rxWant = true
	c.rxRun.Store(true)
	hc := c.hc
	c.mu.Unlock()
	c.resumeWrites()
	ep.in.Signal() //nolint:errcheck // wakes our own receive loop; a closed event means the channel is going
	// A server's peer may be owed a signal: one lost with a predecessor
	// process (reattach leaves it to this point), or one for packets
	// written while paused. An extra signal costs the guest a look.
	if hc != nil && owed(hc.In, hc.Out) {
		ep.out.Signal() //nolint:errcheck // a gone peer is noticed by the control plane
	}
	c.runCallback(c.cfg.callbacks.PostStarted)
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
	stopped := c.rxStopped // StopIndications did the first step
	if ep == nil || (!c.rxWant && !stopped) {
		c.mu.Unlock()
		return
	}
	c.rxStopped = false
	wake := false
	if !stopped {
		c.rxWant = false
		c.rxRun.Store(false)
		c.rxParked = canSkip && c.rxSleeping.Load() // as in StopIndications
		wake = !c.rxParked
	}
	c.mu.Unlock()
	if wake {
		ep.in.Signal() //nolint:errcheck // see maybeActivate
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

// doQueuedWork does the work queued so far, for the worker's loop: what
// comes in meanwhile waits for the next turn of the loop, so that a
// lifecycle request is not held up by a peer that keeps the queue busy.
func (c *Channel) doQueuedWork() {
	for n := c.work.len(); n > 0; n-- {
		it, ok := c.work.pop()
		if !ok {
			return
		}
		c.doWork(it)
	}
	if c.work.len() > 0 {
		c.work.wake()
	}
}

// drainWork does the work queued, until the queue is empty.
func (c *Channel) drainWork() {
	for {
		it, ok := c.work.pop()
		if !ok {
			return
		}
		c.doWork(it)
	}
}

// waitIdle waits until no incoming packet is outstanding (with all) or
// none but restartable ones, doing work (deferred packets) meanwhile.
func (c *Channel) waitIdle(all bool) {
	c.mu.Lock()
	c.idleWaiters++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.idleWaiters--
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		n := c.outstanding
		if !all {
			n = c.busyLocked()
		}
		c.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-c.work.ready:
			c.drainWork()
		case <-c.idle:
		}
	}
}

// closeOpen closes an open channel: packets stop (Suspend), the receive
// goroutine ends, outgoing packets fail with StatusDeviceRemoved, the
// subchannels close, the client closes its side, Closed runs, and the
// GPADLs left are destroyed or unmapped. It reports whether the channel
// was open. On the worker.
func (c *Channel) closeOpen() bool {
	c.mu.Lock()
	ep := c.ep
	wasOpen := c.open
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
	c.mu.Unlock()
	ep.in.Signal() //nolint:errcheck // see maybeActivate
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
		gch.Close(context.Background()) //nolint:errcheck // the host may be gone; the pages then stay allocated
	}
	c.runCallback(c.cfg.callbacks.Closed)
	c.destroyGpadls()

	c.mu.Lock()
	c.open = false
	c.ep, c.hc, c.gch = nil, nil, nil
	if !c.server {
		c.closed = true
	}
	c.inFree = append(c.inFree[:0], c.inAll...)
	for _, p := range c.inAll {
		p.state, p.restart = pktFree, false
	}
	c.outstanding = 0
	clear(c.restarts)
	c.restarts = c.restarts[:0]
	c.redo = nil
	c.mu.Unlock()
	c.sendMu.Lock()
	c.sendEP = nil
	c.sendMu.Unlock()
	return true
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
	ep, open, paused := c.ep, c.open, c.paused
	if ep == nil || !open || !paused {
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
