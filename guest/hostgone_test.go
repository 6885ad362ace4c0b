package guest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// TestHostGoneMidRequest: a host that hangs up while a request waits for
// its answer fails that request with ErrClosed, at once and without a
// deadline; the closed client leaves no goroutine or descriptor behind;
// and a new client to a good host then works.
func TestHostGoneMidRequest(t *testing.T) {
	leakcheck.Check(t)
	gpadl := func(ctx context.Context, cl *guest.Client) (uint32, error) {
		pfn, err := cl.Pages().Alloc(1)
		if err != nil {
			t.Fatal(err)
		}
		return cl.CreateGpadl(ctx, 1, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{pfn}}})
	}
	for _, tc := range []struct {
		at  protocol.MessageType
		run func(context.Context, *guest.Client) error
	}{
		{protocol.TypeInitiateContact, nil},
		{protocol.TypeRequestOffers, func(ctx context.Context, cl *guest.Client) error {
			_, err := cl.RequestOffers(ctx)
			return err
		}},
		{protocol.TypeGpadlHeader, func(ctx context.Context, cl *guest.Client) error {
			_, err := gpadl(ctx, cl)
			return err
		}},
		{protocol.TypeGpadlTeardown, func(ctx context.Context, cl *guest.Client) error {
			id, err := gpadl(ctx, cl)
			if err != nil {
				t.Fatalf("CreateGpadl before the hang-up: %v", err)
			}
			return cl.TeardownGpadl(ctx, 1, id)
		}},
		{protocol.TypeOpenChannel, func(ctx context.Context, cl *guest.Client) error {
			o, err := cl.WaitOffer(ctx, fuzzDevice, protocol.GUID{})
			if err != nil {
				t.Fatalf("WaitOffer before the hang-up: %v", err)
			}
			_, err = cl.Open(ctx, o, guest.OpenOptions{OutPages: 2, InPages: 2})
			return err
		}},
		{protocol.TypeTLConnectRequest, func(ctx context.Context, cl *guest.Client) error {
			_, err := cl.Connect(ctx, protocol.TLConnectRequest{EndpointID: fuzzEndpoint, ServiceID: fuzzService})
			return err
		}},
		{protocol.TypeUnload, func(ctx context.Context, cl *guest.Client) error { return cl.Unload(ctx) }},
	} {
		t.Run(tc.at.String(), func(t *testing.T) {
			hc, gc, err := transport.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Close()
			h := newScriptHost(t, hc, nil)
			h.hangUpAt = tc.at
			served := make(chan struct{})
			go h.serve(served)
			defer func() { <-served }()
			// No deadline that could end a request: only the
			// hang-up may.
			ctx := context.Background()
			done := make(chan error, 1)
			go func() {
				cl, err := guest.New(ctx, gc, guest.Config{MemorySize: 64 * 4096})
				if err != nil {
					gc.Close()
					done <- err
					return
				}
				defer cl.Close()
				done <- tc.run(ctx, cl)
			}()
			select {
			case err = <-done:
			case <-time.After(testbus.Timeout):
				hc.Close()
				t.Fatalf("the request outlived the host's hang-up by %v", testbus.Timeout)
			}
			if !errors.Is(err, guest.ErrClosed) {
				t.Fatalf("after the host hung up at %v: %v, want ErrClosed", tc.at, err)
			}
		})
	}
	// The same process, a good host.
	_, ch := openIdle(t)
	ctx := testbus.Context(t)
	if err := ch.Close(ctx); err != nil {
		t.Fatalf("Close on a good host: %v", err)
	}
}

// idleOffer is a good host's offer of a device that does nothing.
func idleOffer(t *testing.T) (*testbus.Bus, guest.Offer) {
	t.Helper()
	b := testbus.New(t, testbus.Config{Host: host.Config{Devices: []host.Device{&testbus.RawDevice{
		Spec:  host.OfferSpec{InterfaceType: fuzzDevice},
		Serve: func(ctx context.Context, _ *host.Channel) { <-ctx.Done() },
	}}}})
	o, err := b.Client.WaitOffer(testbus.Context(t), fuzzDevice, protocol.GUID{})
	if err != nil {
		t.Fatal(err)
	}
	return b, o
}

// openIdle opens a channel of a device that does nothing, on a good host.
func openIdle(t *testing.T) (*testbus.Bus, *guest.Channel) {
	t.Helper()
	b, o := idleOffer(t)
	ch, err := b.Client.Open(testbus.Context(t), o, guest.OpenOptions{})
	if err != nil {
		t.Fatalf("Open on a good host: %v", err)
	}
	return b, ch
}
