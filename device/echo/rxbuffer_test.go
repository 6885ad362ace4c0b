package echo

import (
	"context"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestStreamRxBuffer: with a receive buffer every stream packet comes
// back through it (transfer-page packets the guest completes), checked as
// in band, for payloads from the smallest to the largest; none fell back
// in band, and the guest gave every range back.
func TestStreamRxBuffer(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	if err := r.c.UseRxBuffer(testbus.Context(t), 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := r.c.UseRxBuffer(testbus.Context(t), 1<<20); err == nil {
		t.Fatal("a second receive buffer was set up")
	}
	const count = 3000
	for _, size := range []int{16, 1000, 16384, DefaultMaxPayload} {
		// The window's answers fit in the buffer: none goes in band.
		window := min(200, (4<<20)/size/2)
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: size, Count: count, Window: window})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != count || res.Received != count || res.Lost+res.Corrupted+res.Duplicated != 0 {
			t.Fatalf("payload %d: %+v", size, res)
		}
	}
	if n := r.srv.TransferFallbacks(); n != 0 {
		t.Fatalf("%d answers in band", n)
	}
	if n := r.c.RxBufferPackets(); n != 4*count {
		t.Fatalf("%d answers through the buffer, want %d", n, 4*count)
	}
	ts := r.srv.rx.Load()
	if ts == nil {
		t.Fatal("the server has no receive buffer")
	}
	testbus.Eventually(t, "every range given back", func() bool { return ts.InUse() == 0 })
}

// TestStreamRxBufferSmall: a buffer smaller than the window makes the
// server answer some packets in band; the stream is still complete.
func TestStreamRxBufferSmall(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	if err := r.c.UseRxBuffer(testbus.Context(t), 4096); err != nil {
		t.Fatal(err)
	}
	res, err := r.c.Stream(context.Background(), StreamConfig{Payload: 1024, Count: 2000, Window: 64})
	if err != nil || res.Received != 2000 || res.Lost+res.Corrupted+res.Duplicated != 0 {
		t.Fatalf("%v %+v", err, res)
	}
	if r.srv.TransferFallbacks() == 0 {
		t.Fatal("64 KiB in flight fit a 4 KiB buffer")
	}
}

// TestStreamRxBufferBatches: the answers to one batch of packets go out
// as the ranges of one transfer-page packet, which one completion gives
// back: 50 packets written while the server is paused are read in one
// batch when it starts, and answered with one packet.
func TestStreamRxBufferBatches(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	if err := r.c.UseRxBuffer(testbus.Context(t), 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	const count = 50
	sent := r.c.Channel().Stats().PacketsOut
	out := r.srv.Channel().Stats().PacketsOut
	type result struct {
		res StreamResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: 1024, Count: count, Window: count})
		done <- result{res, err}
	}()
	testbus.Eventually(t, "the guest's packets in the ring", func() bool { return r.c.Channel().Stats().PacketsOut-sent >= count })
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.res.Received != count || got.res.Lost+got.res.Corrupted+got.res.Duplicated != 0 {
		t.Fatalf("%v %+v", got.err, got.res)
	}
	if n := r.srv.Channel().Stats().PacketsOut - out; n != 1 {
		t.Fatalf("%d packets answered one batch of %d, want 1", n, count)
	}
	if n := r.c.RxBufferPackets(); n != count {
		t.Fatalf("%d answers through the buffer, want %d", n, count)
	}
}

// TestStreamRxBufferStagedAtPause: answers staged by a batch that a
// pause stopped (ProcessingComplete does not run then) go out in band
// at the suspend, queued until the channel starts again; none is lost.
func TestStreamRxBufferStagedAtPause(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	if err := r.c.UseRxBuffer(testbus.Context(t), 4<<20); err != nil {
		t.Fatal(err)
	}
	ts := r.srv.rx.Load()
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	// The receive goroutine is parked: what its batch would have
	// staged before the pause stopped it.
	for range 3 {
		if !r.srv.stageAnswer(ts, make([]byte, 64)) {
			t.Fatal("not staged")
		}
	}
	// Started with an empty ring, the server reads no batch, so nothing
	// sends the staged answers but the next suspend.
	for _, step := range []func() error{r.srv.Start, r.srv.Pause, r.srv.Start} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	testbus.Eventually(t, "the staged answers at the guest", func() bool { return r.c.Stray() == 3 })
}
