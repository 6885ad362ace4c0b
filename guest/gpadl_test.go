package guest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestTeardownUnknownGpadl: a teardown of a GPADL the client did not make
// on that channel, or tore down already, is refused at once
// (ErrNoGpadl); the host drops such a teardown, and the call waited until
// its context ended.
func TestTeardownUnknownGpadl(t *testing.T) {
	leakcheck.Check(t)
	b, ch := openIdle(t)
	ctx := testbus.Context(t)
	id := ch.Offer.ChannelID
	refused := func(what string, channelID, gpadlID uint32) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := b.Client.TeardownGpadl(short, channelID, gpadlID); !errors.Is(err, guest.ErrNoGpadl) {
			t.Fatalf("teardown of %s: %v, want ErrNoGpadl", what, err)
		}
	}
	refused("a GPADL never made", id, 424242)
	refused("the ring GPADL, named with another channel", id+1, ch.RingGpadl)
	pfn, err := b.Client.Pages().Alloc(1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.Client.CreateGpadl(ctx, id, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{pfn}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Client.TeardownGpadl(ctx, id, g); err != nil {
		t.Fatalf("teardown of a GPADL made: %v", err)
	}
	refused("a GPADL torn down already", id, g)
}
