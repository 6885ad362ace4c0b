package hvsock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

// TestDialOfferRescindedBeforeOpen: the host rescinds a connection's
// offer after the guest's connect got it and before the guest opens it
// (here the host's OpenTimeout; in a servicing, a successor that cannot
// take the offer back). The guest's dial fails at once with ErrReset.
// Before, it waited for its context: the channel's worker waited for
// another offer of the connection's interface, which never came.
func TestDialOfferRescindedBeforeOpen(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{OpenTimeout: 100 * time.Millisecond}, host.Limits{}, guest.Config{})
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := testbus.Context(t)
	var o guest.Offer
	for {
		o, err = r.Client.Connect(ctx, protocol.TLConnectRequest{EndpointID: ephemeralEndpoint(), ServiceID: svc5000})
		if !errors.Is(err, guest.ErrRescinded) {
			break // else the rescind came before Connect saw the offer: again
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(testbus.Timeout); r.Client.Offered(o); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the host did not rescind the unopened offer")
		}
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	c, err := openGuest(wait, r.Client, o, Addr{}, Addr{})
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, ErrReset) {
		t.Fatalf("the open of a rescinded offer: %v after %v, want ErrReset", err, time.Since(start).Round(time.Millisecond))
	}
}
