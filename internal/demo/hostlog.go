package demo

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/internal/child"
)

// serviceWait bounds one servicing: SIGHUP to "servicing complete".
const serviceWait = 15 * time.Second

// hostLog is the host process and the events of its JSON log on stderr
// (hosting.DecodeEvent), read as demo waits for them: the host listens,
// a servicing completed.
type hostLog struct {
	proc   *child.Process
	events chan hosting.Event
}

// startHost starts the host with args (which must ask for a JSON log).
func startHost(bin string, args []string) (*hostLog, error) {
	h := &hostLog{events: make(chan hosting.Event, 256)}
	p, err := child.Start(bin, args, h.line)
	if err != nil {
		return nil, err
	}
	h.proc = p
	return h, nil
}

// line is the host's stderr hook: its events are queued, and awaited, in
// order; the other lines are no concern of the demo's.
func (h *hostLog) line(b []byte) {
	if e, err := hosting.DecodeEvent(b); err == nil {
		h.events <- e
	}
}

// wait waits for the next event that match takes.
func (h *hostLog) wait(ctx context.Context, what string, timeout time.Duration, match func(hosting.Event) bool) (hosting.Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case e := <-h.events:
			if match(e) {
				return e, nil
			}
		case <-h.proc.Done():
			return nil, fmt.Errorf("exited (%v) before %q", h.proc.Err(), what)
		case <-t.C:
			return nil, fmt.Errorf("no %q within %v", what, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// listening waits until the host serves.
func (h *hostLog) listening(ctx context.Context, timeout time.Duration) error {
	_, err := h.wait(ctx, "host listening", timeout, func(e hosting.Event) bool {
		_, ok := e.(*hosting.Listening)
		return ok
	})
	return err
}

// service sends the host SIGHUP and waits for its n-th "servicing
// complete", returning the blackout in milliseconds.
func (h *hostLog) service(ctx context.Context, n int) (float64, error) {
	if err := h.proc.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	e, err := h.wait(ctx, "servicing complete", serviceWait, func(e hosting.Event) bool {
		_, ok := e.(*hosting.ServicingComplete)
		return ok
	})
	if err != nil {
		return 0, fmt.Errorf("%w%s", err, h.proc.Tail())
	}
	c := e.(*hosting.ServicingComplete)
	if c.Servicing != uint32(n) {
		return 0, fmt.Errorf("the host counts servicing %d", c.Servicing)
	}
	if !c.Exec {
		return 0, fmt.Errorf("servicing %d rolled back: the host restored its guests in the process that saved them%s", c.Servicing, h.proc.Tail())
	}
	if c.Pid != h.proc.Pid() {
		return 0, fmt.Errorf("the successor's pid %d is not the host's %d", c.Pid, h.proc.Pid())
	}
	return float64(c.Blackout.Microseconds()) / 1000, nil
}
