package echo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestPingHostGone: a host that goes away while a Ping without a timeout
// waits for its completion ends the Ping with ErrClosed, and the closed
// client leaves nothing running.
func TestPingHostGone(t *testing.T) {
	leakcheck.Check(t)
	stalled := make(chan struct{})
	h := &hostileEcho{script: []byte{echoGood, echoStall}, abort: func() { close(stalled) }}
	b, c := hostileClient(t, h)
	done := make(chan error, 1)
	go func() {
		_, err := c.Ping(context.Background(), 4, 64, channel.NoTimeout)
		done <- err
	}()
	select {
	case <-stalled:
	case <-time.After(testbus.Timeout):
		t.Fatal("the second ping never came")
	}
	b.Stop()
	var err error
	select {
	case err = <-done:
	case <-time.After(testbus.Timeout):
		t.Fatal("Ping outlived the host")
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping with the host gone: %v, want ErrClosed", err)
	}
}
