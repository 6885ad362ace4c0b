package pipe

import (
	"net"
	"os"
	"sync"
	"time"
)

// deadline is one direction's deadline, and the context.Context a wait in
// that direction selects on: Done is closed once the deadline passed, or
// for good when the Conn closes. A deadline moved later while a call
// waits keeps the same Done channel (the call waits on); one moved after
// it passed gets a new channel. Being a context, it goes to
// channel.WaitSendSpace as it is, without a context allocated per wait.
type deadline struct {
	mu     sync.Mutex
	at     time.Time
	timer  *time.Timer
	done   chan struct{}
	passed bool   // done is closed because the deadline passed
	ended  bool   // done is closed because the Conn closed
	gen    uint64 // counts set calls: a timer of an earlier one does nothing
}

func newDeadline() *deadline { return &deadline{done: make(chan struct{})} }

// set moves the deadline to t (zero: none).
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended {
		return
	}
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.passed {
		d.done, d.passed = make(chan struct{}), false
	}
	d.at = t
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		d.passed = true
		close(d.done)
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen && !d.passed && !d.ended {
			d.passed = true
			close(d.done)
		}
	})
}

// end closes Done for good: the Conn closed.
func (d *deadline) end() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended {
		return
	}
	d.ended = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if !d.passed {
		close(d.done)
	}
}

// Deadline implements context.Context.
func (d *deadline) Deadline() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at, !d.at.IsZero()
}

// Done implements context.Context.
func (d *deadline) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done
}

// Err implements context.Context: net.ErrClosed once the Conn closed,
// os.ErrDeadlineExceeded (a net.Error whose Timeout is true) once the
// deadline passed, else nil.
func (d *deadline) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.ended:
		return net.ErrClosed
	case d.passed:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Value implements context.Context: a deadline carries no values.
func (d *deadline) Value(any) any { return nil }
