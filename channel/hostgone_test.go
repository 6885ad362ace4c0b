package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
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
