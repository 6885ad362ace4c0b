package channel

import (
	"context"
	"errors"

	"github.com/govmbus/govmbus/ring"
)

// WaitSendSpace blocks until an in-band packet of n payload bytes sent
// with TrySend or TrySendParts would be written at once: the channel is
// open, its writes are not stopped (a paused or saved server), nothing
// waits in its send queue, and the outgoing ring has the room. It is the
// wait of a blocking writer, which tries a send, and on
// StatusBufferOverflow waits here and tries again.
//
// It does not poll: it asks the peer, through the ring's pending send
// size, to signal once the room is there, and sleeps until the receive
// goroutine, woken by that signal, wakes it. Another sender may take
// the room first; the caller's next try then reports
// StatusBufferOverflow again and it waits again.
//
// On an enabled channel that is not open yet it waits for the open. It
// returns ctx.Err() when ctx ends first; StatusInvalidDeviceState for a
// channel that is not enabled, or closed; StatusInvalidBufferSize for a
// packet that can never fit; StatusDeviceRemoved for a broken ring.
// Waiters do not allocate; any number may wait at once.
func (c *Channel) WaitSendSpace(ctx context.Context, n int) error {
	if n < 0 {
		return fail(StatusInvalidBufferSize, "WaitSendSpace for %d bytes", n)
	}
	if wireLen(n, nil) > MTU {
		return fail(StatusInvalidBufferSize, "packet of %d bytes passes the MTU", wireLen(n, nil))
	}
	registered := false
	defer func() {
		if registered {
			c.spaceWaiters.Add(-1)
		}
	}()
	for {
		ready, err := c.spaceReady(n)
		if err != nil || ready {
			if registered {
				// Another waiter may need the wake-up this one took.
				c.passSpaceWake()
			}
			return err
		}
		if !registered {
			// Counted after the look, which asked the peer for its
			// signal: the receive loop, which the signal wakes, sees
			// the count (its flush takes sendMu, which the look held).
			c.spaceWaiters.Add(1)
			registered = true
			continue // looked before it was counted: look once more
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.spaceWake:
		}
	}
}

// spaceReady is WaitSendSpace's look: whether n bytes can go now, or an
// error that ends the wait. When the room is missing it leaves the
// pending send size set for the peer.
func (c *Channel) spaceReady(n int) (bool, error) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	ep := c.sendEP
	if ep == nil {
		c.mu.Lock()
		waiting := c.ph.waiting()
		c.mu.Unlock()
		if !waiting {
			return false, fail(StatusInvalidDeviceState, "wait for send space on a channel that is not open")
		}
		return false, nil // the open wakes the receive loop, which wakes us
	}
	if c.qHead != nil || c.gate == gateShut {
		// The queue's flush (it asked for the signal) or Start wakes
		// the receive loop.
		return false, nil
	}
	ready, err := ep.w.WaitFor(n, 0)
	switch {
	case err == nil:
		return ready, nil
	case errors.Is(err, ring.ErrTooLarge):
		return false, fail(StatusInvalidBufferSize, "packet does not fit the ring")
	}
	return false, fail(StatusDeviceRemoved, "wait for send space: %w", err)
}

// wakeSpaceWaiter wakes one WaitSendSpace, if any waits, to look again:
// on each of the receive loop's wake-ups (the peer signalled, the
// channel went live) and when the channel closes. It reports whether one
// waited.
func (c *Channel) wakeSpaceWaiter() bool {
	if c.spaceWaiters.Load() > 0 {
		c.postSpaceWake()
		return true
	}
	return false
}

// passSpaceWake is a finished waiter's: while others wait, it posts the
// wake-up it may have taken, so that one post reaches them all in turn.
func (c *Channel) passSpaceWake() {
	if c.spaceWaiters.Load() > 1 {
		c.postSpaceWake()
	}
}

// postSpaceWake posts the single wake-up token.
func (c *Channel) postSpaceWake() {
	select {
	case c.spaceWake <- struct{}{}:
	default:
	}
}
