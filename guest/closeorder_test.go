package guest_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestChannelOutlivesClient: a channel still open when its client closes
// keeps its rings' addresses, backed by private memory from then on: a
// write to them afterwards (a driver's last packet, as an hvsock Conn's
// FIN on its Close) lands there, and the channel's Close unmaps them; the
// leak check finds no descriptor left. Before, the client's Close
// unmapped guest memory at once, and that write killed the process with
// a segmentation fault.
func TestChannelOutlivesClient(t *testing.T) {
	leakcheck.Check(t)
	b, ch := openIdle(t)
	ctx := testbus.Context(t)
	mem := b.Client.Memory()
	b.Client.Close()
	if mem.Bytes() == nil {
		t.Fatal("the client's Close unmapped the addresses of an open channel's rings")
	}
	for i := range ch.Out[:64] {
		ch.Out[i] = byte(i) // faults if unmapped
	}
	ch.Close(ctx) //nolint:errcheck // the host is gone: ErrClosed
	if mem.Bytes() != nil {
		t.Fatal("guest memory still mapped after the last channel closed")
	}
}

// TestOpenAfterClose: Open on a closed client fails with ErrClosed; it
// formatted its rings in unmapped guest memory and panicked.
func TestOpenAfterClose(t *testing.T) {
	leakcheck.Check(t)
	b, o := idleOffer(t)
	ctx := testbus.Context(t)
	b.Client.Close()
	if _, err := b.Client.Open(ctx, o, guest.OpenOptions{}); !errors.Is(err, guest.ErrClosed) {
		t.Fatalf("Open after Close: %v, want ErrClosed", err)
	}
}

// TestOpenRacesClose: Open and Close at once end with the channel open
// (and then closed) or with ErrClosed; before, Close could unmap guest
// memory while Open formatted its rings there, a fault no recover catches.
func TestOpenRacesClose(t *testing.T) {
	leakcheck.Check(t)
	for i := range 40 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			b, o := idleOffer(t)
			ctx := testbus.Context(t)
			done := make(chan error, 1)
			go func() {
				// Large rings: formatting them takes long enough for
				// the Close to land in it.
				ch, err := b.Client.Open(ctx, o, guest.OpenOptions{OutPages: 512, InPages: 512})
				if err == nil {
					ch.Close(ctx) //nolint:errcheck // the connection is closing
				}
				done <- err
			}()
			b.Client.Close()
			<-done // any outcome but a fault: the connection may close at any step of Open
		})
	}
}
