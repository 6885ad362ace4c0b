package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
)

// TestShutdownWithGuestThatNeverReads: a guest that makes the host answer
// it again and again without ever reading fills its socket, and the host's
// send to it blocks. Shutdown must still return once its context ends,
// rather than wait forever on that guest.
func TestShutdownWithGuestThatNeverReads(t *testing.T) {
	leakcheck.Check(t)
	d := newRecording("44444444-0000-0000-0000-000000000000")
	s := newServed(t, host.Config{Devices: []host.Device{d}})
	g := s.raw(t, 1<<20)
	g.contact(protocol.VersionWin10)
	ch := g.offers()[0].ChannelID

	// Each GpadlHeader naming a page outside guest memory is answered
	// with a failing GpadlCreated, which this guest never reads.
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for id := uint32(1); id < 100000; id++ {
			msgs, err := protocol.NewGpadlMessages(ch, id, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{1 << 40}}})
			if err != nil {
				return
			}
			if g.c.Send(protocol.Marshal(msgs[0])) != nil {
				return // the host closed the connection
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the socket fills; the host blocks

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Host.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Log("Shutdown finished before its deadline")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return 10 s after its 500 ms context ended")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Shutdown took %v", took)
	}
	g.c.Close()
	<-flooded
}
