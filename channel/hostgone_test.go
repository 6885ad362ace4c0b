package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// TestHostGoneFailsClient: when the connection to the host ends without
// a rescind (the host process died), a client channel closes like a
// rescinded one: a request waiting for its completion ends with
// StatusDeviceRemoved instead of waiting forever, and later sends fail.
func TestHostGoneFailsClient(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder // the server keeps the request: it is never answered
	_, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
	release := func() {
		for _, p := range h.take() {
			p.Complete(nil) // the old server's packet: nothing to answer to
		}
	}
	t.Cleanup(release) // also when the test fails: the rig's Close waits for it
	done := make(chan error, 1)
	go func() {
		resp := make([]byte, 8)
		_, err := c.SendSynchronousRequest([]byte("pending."), nil, 0, resp, 30*time.Second)
		done <- err
	}()
	eventually(t, "the request at the server", func() bool { return h.count() == 1 })
	// No rescind: the connection just ends. (Close also waits for the
	// server channel, which waits for the packet the test holds: it
	// runs beside the check.)
	closed := make(chan struct{})
	go func() {
		r.h.Close()
		close(closed)
	}()
	select {
	case err := <-done:
		if !errors.Is(err, StatusDeviceRemoved) {
			t.Fatalf("request after the host went away: %v, want DEVICE_REMOVED", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request still waits 10 s after the host went away")
	}
	waitState(t, c, StateClosed)
	p, err := c.AllocatePacket()
	must(t, err)
	if err := p.Send([]byte("late...."), 0); err == nil {
		t.Fatal("send on a channel whose host is gone succeeded")
	}
	p.Free()
	release()
	<-closed
}

// TestClientClosedFailsLateSends: a request sent on a client channel while
// (or after) its guest connection closes ends with a failure, not a wait
// for ever: a send in the moment the channel was closing, still open but
// its queue already failed, was queued, and the channel then moved to
// Closed with nothing left to fail it until Disable. The same for a
// client channel still waiting for its offer.
func TestClientClosedFailsLateSends(t *testing.T) {
	leakcheck.Check(t)
	for _, waiting := range []bool{false, true} {
		for i := range 10 {
			r := newRig(t)
			var c *Channel
			if waiting {
				c = r.newClient(t, ignore, StateCallbacks{})
				must(t, c.SetInterface(protocol.MustParseGUID("0a1b2c3d-0000-4000-8000-0000000000ff"), testInst)) // offered by no one
				must(t, c.Enable())
			} else {
				_, c = r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
			}
			r.cl.Close() // the channel closes after, on its worker
			res := make(chan error, 1)
			go func() {
				_, err := c.SendSynchronousRequest([]byte("late request"), nil, 0, make([]byte, 64), NoTimeout)
				res <- err
			}()
			select {
			case err := <-res:
				if err == nil || StatusOf(err) != StatusDeviceRemoved && StatusOf(err) != StatusInvalidDeviceState {
					t.Fatalf("waiting %v, run %d: %v", waiting, i, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("waiting %v, run %d: a request sent while the guest connection closed still waits 5 s on; channel %v", waiting, i, c.State())
			}
		}
	}
}
