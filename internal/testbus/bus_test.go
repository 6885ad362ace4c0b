package testbus_test

import (
	"testing"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/transport"
)

// TestBusServiced: a Bus serviced in place (Save, Stop, Restore) keeps its
// guest, and the cleanups close the restored host and the guest with
// nothing left behind.
func TestBusServiced(t *testing.T) {
	leakcheck.Check(t)
	t.Run("service", func(t *testing.T) {
		b := testbus.New(t, testbus.Config{})
		old, id := b.Host, b.Guest.ID()
		saved := b.Save(t)
		b.Stop()
		b.Restore(t, host.Config{}, saved)
		if b.Host == old || b.Guest.ID() != id {
			t.Fatalf("restored host %p (old %p), guest %d (was %d)", b.Host, old, b.Guest.ID(), id)
		}
		b.Host.Resume()
		if n := b.Host.NumGuests(); n != 1 {
			t.Fatalf("%d guests after the restore", n)
		}
	})
}

// TestListen: a guest reaches a Served host through its socket, and the
// cleanups end the host's serving goroutines.
func TestListen(t *testing.T) {
	leakcheck.Check(t)
	t.Run("listen", func(t *testing.T) {
		s := testbus.NewServed(t, host.Config{})
		c, err := transport.Dial(testbus.Context(t), s.Listen(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, err := guest.New(testbus.Context(t), c, guest.Config{MemorySize: testbus.DefaultMemory})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		testbus.Eventually(t, "the guest at the host", func() bool { return s.Host.NumGuests() == 1 })
	})
}
