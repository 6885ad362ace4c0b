package channel

import (
	"context"
	"time"

	"github.com/govmbus/govmbus/host"
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

var reqNames = [...]string{"Start", "Start (held)", "Pause", "Open", "Close", "stop", "Reattach"}

func (k reqKind) String() string {
	if int(k) < len(reqNames) {
		return reqNames[k]
	}
	return "request?"
}

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

// A call after the worker has stopped (the channel was disabled) fails
// with StatusInvalidDeviceState instead of waiting for ever: the host
// still calls a disabled server's device when its offer outlived the
// channel, as after a Disable on a guest a servicing had detached
// (host.Offered.Rescind leaves the offer to the successor), and then the
// host's Close finds the channel already closed.
func (c *Channel) callState(kind reqKind, hc *host.Channel, st *restoredState) error {
	r := request{kind: kind, hc: hc, st: st, reply: make(chan error, 1)}
	select {
	case c.ctl <- r:
	case <-c.workerDone:
		return fail(StatusInvalidDeviceState, "%v on a disabled channel", kind)
	}
	return <-r.reply
}

func (c *Channel) stopWorker() {
	c.call(reqStop, nil) //nolint:errcheck // always nil
	<-c.workerDone
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
				r.reply <- c.pauseOpen()
			case reqStart, reqStartHeld:
				r.reply <- c.startOpen(r.kind == reqStartHeld)
			}
		case <-c.released:
			c.mu.Lock()
			live := c.ph.open() && c.flow == flowLive
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
			// Enabled, and not open since closeOpen: every such phase
			// has the arrow.
			c.moveLocked("primary closed", evLost) //nolint:errcheck // see above
			c.mu.Unlock()
			c.failOutgoing()
		}
	}
}

func (c *Channel) currentHC() *host.Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hc
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
