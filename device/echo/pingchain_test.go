package echo

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestPingFromCompletion: every request is answered and checked, the
// latencies are timed, each request goes into the ring once, and a
// second chain on the same client works as the first.
func TestPingFromCompletion(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	for range 2 {
		res, err := r.c.PingFromCompletion(context.Background(), 200, 64, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 200 || res.Received != 200 || res.Lost+res.Corrupted+res.Duplicated != 0 || res.P50 <= 0 || res.P99 < res.P50 || res.CPUPerPing <= 0 {
			t.Fatalf("%+v", res)
		}
	}
	if n := r.c.Channel().Stats().PacketsOut; n != 400 {
		t.Errorf("%d packets sent for 400 requests", n)
	}
}

// hostileClient opens an echo client on a host that answers as h says.
func hostileClient(t *testing.T, h *hostileEcho) (*testbus.Bus, *Client) {
	t.Helper()
	b := testbus.New(t, testbus.Config{Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
		Spec:  host.OfferSpec{InterfaceType: InterfaceType, InterfaceInstance: InterfaceInstance},
		Serve: h.serve,
	}}}})
	c, err := Open(testbus.Context(t), b.Client, ClientConfig{RingPages: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) //nolint:errcheck // the test's checks came first
	return b, c
}

// pingFromCompletion runs PingFromCompletion and fails t if it has not
// returned within testbus.Timeout.
func pingFromCompletion(t *testing.T, ctx context.Context, c *Client, count int, timeout time.Duration) (PingResult, error) {
	t.Helper()
	type result struct {
		res PingResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.PingFromCompletion(ctx, count, 64, timeout)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-time.After(testbus.Timeout):
		t.Fatal("PingFromCompletion did not return")
		return PingResult{}, nil
	}
}

// TestPingFromCompletionLost: a request the host never answers is given
// up after the timeout and the chain goes on with the next on a new
// packet; the given-up packet is freed when the close fails it.
func TestPingFromCompletionLost(t *testing.T) {
	leakcheck.Check(t)
	h := &hostileEcho{script: []byte{echoGood, echoStall, echoGood, echoStall}, abort: func() {}}
	_, c := hostileClient(t, h)
	res, err := pingFromCompletion(t, context.Background(), c, 6, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 6 || res.Received != 4 || res.Lost != 2 || res.Corrupted != 0 {
		t.Fatalf("%+v, want 6 sent, 4 received, 2 lost", res)
	}
	// Closing fails the two given-up packets; their completions free
	// them, on the channel's goroutines, which Close waits for.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPingFromCompletionCancel: a chain waiting without a timeout for an
// answer that does not come ends when its context does.
func TestPingFromCompletionCancel(t *testing.T) {
	leakcheck.Check(t)
	stalled := make(chan struct{})
	h := &hostileEcho{script: []byte{echoGood, echoStall}, abort: func() { close(stalled) }}
	_, c := hostileClient(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stalled
		cancel()
	}()
	res, err := pingFromCompletion(t, ctx, c, 4, channel.NoTimeout)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
	if res.Sent != 2 || res.Received != 1 {
		t.Fatalf("%+v, want 2 sent, 1 received", res)
	}
}

// TestPingFromCompletionHostGone: a host that goes away under a request
// ends the chain with ErrClosed.
func TestPingFromCompletionHostGone(t *testing.T) {
	leakcheck.Check(t)
	stalled := make(chan struct{})
	h := &hostileEcho{script: []byte{echoGood, echoStall}, abort: func() { close(stalled) }}
	b, c := hostileClient(t, h)
	go func() {
		<-stalled
		b.Stop()
	}()
	_, err := pingFromCompletion(t, context.Background(), c, 4, channel.NoTimeout)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("with the host gone: %v, want ErrClosed", err)
	}
}
