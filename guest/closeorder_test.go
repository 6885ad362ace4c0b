package guest_test

import (
	"testing"

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
