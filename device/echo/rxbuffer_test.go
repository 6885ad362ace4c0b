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
