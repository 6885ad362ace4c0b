package channel

import "time"

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

// StateCallbacks returns the state-change callbacks SetStateCallbacks
// set. A layer that configures a channel another layer set up (package
// hvsock over package pipe's Conn) wraps them to learn of the changes
// too, calling each one it replaces.
func (c *Channel) StateCallbacks() StateCallbacks {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.callbacks
}
