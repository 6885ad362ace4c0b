package blk

import (
	"errors"
	"fmt"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
)

// DefaultTimeout is ClientConfig.Timeout's default.
const DefaultTimeout = 30 * time.Second

// noAnswer is the error of a request the host left unanswered.
func (d *Disk) noAnswer() error {
	return fmt.Errorf("blk: the host did not answer within %v: %w", d.timeout, guest.ErrProtocol)
}

// newCall is a call for ReadAt or WriteAt: a used one if there is one,
// with its timer, so that a request allocates neither.
func (d *Disk) newCall() *call {
	if c, ok := d.calls.Get().(*call); ok {
		return c
	}
	c := &call{fired: make(chan struct{})}
	c.timer = time.AfterFunc(d.timeout, func() {
		defer close(c.fired)
		c.fail(d.noAnswer())
		d.ch.Disable() //nolint:errcheck // the requests fail with noAnswer
	})
	c.timer.Stop() // await starts it
	return c
}

// await waits for c's requests and returns their first error. If the host
// leaves them unanswered for the disk's timeout, the disk fails: its
// channel is closed under them, which completes each (as the device
// removed), so that no bounce buffer is handed to another request while
// the host may still write into it. A call whose timer did not fire is
// kept for the next request.
func (d *Disk) await(c *call) error {
	c.timer.Reset(d.timeout)
	c.wg.Wait()
	if !c.timer.Stop() {
		<-c.fired
		return c.err // fired once: not used again
	}
	err := c.err
	c.err = nil
	d.calls.Put(c)
	return err
}

// flushFailed turns a FLUSH's channel error into the disk's: a FLUSH the
// host left unanswered fails the disk as await does.
func (d *Disk) flushFailed(err error) error {
	if errors.Is(err, channel.StatusCancelled) {
		d.ch.Disable() //nolint:errcheck // the FLUSH fails with noAnswer
		return d.noAnswer()
	}
	return d.chanErr(err)
}
