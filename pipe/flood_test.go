package pipe

import (
	"io"
	"testing"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestOneWayWriterNoFlood: a writer streaming one way is woken only by
// the peer's signals that room freed, and its channel has nothing to
// read: those wake-ups are the writer's, not a flood of empty ones
// (which would pause the receive goroutine a millisecond in every 64).
func TestOneWayWriterNoFlood(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, rigConfig{mode: channel.PipeByte})
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for range 512 {
			if _, err := r.client.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- r.client.CloseWrite()
	}()
	n, err := io.Copy(io.Discard, r.server)
	must(t, err)
	must(t, <-werr)
	st := r.cch.Stats()
	if n != 512<<16 || st.EmptyWakeups >= 64 {
		t.Fatalf("%d bytes streamed; the writer's channel had %d empty wake-ups, want fewer than 64", n, st.EmptyWakeups)
	}
	t.Logf("%d empty wake-ups", st.EmptyWakeups)
}
