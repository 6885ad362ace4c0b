package testbus

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/transport"
)

// Served is a host.Host serving guests in this process, on goroutines it
// waits for when the test ends.
type Served struct {
	// Host is the host now serving. Restore puts the successor here, and
	// the test's cleanup closes whichever host it holds then.
	Host *host.Host

	serving sync.WaitGroup // Serve, ServeConn
}

// NewServed makes a host of cfg, closed when tb ends.
func NewServed(tb testing.TB, cfg host.Config) *Served {
	tb.Helper()
	h := &Served{Host: host.New(cfg)}
	tb.Cleanup(func() { h.stopWithin(tb) })
	return h
}

// Serve serves the host end c on a goroutine of h's.
func (h *Served) Serve(c *transport.Conn) {
	hh := h.Host
	h.serving.Go(func() { hh.ServeConn(c) }) //nolint:errcheck // the guest's end is the test's to check
}

// Pipe connects a new guest end to the host and returns it; it is closed
// when tb ends.
func (h *Served) Pipe(tb testing.TB) *transport.Conn {
	tb.Helper()
	hc, gc, err := transport.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	h.Serve(hc)
	tb.Cleanup(func() { gc.Close() })
	return gc
}

// Connect connects a guest.Client of cfg to the host over a new Pipe,
// closed when tb ends.
func (h *Served) Connect(tb testing.TB, cfg guest.Config) *guest.Client {
	tb.Helper()
	gc := h.Pipe(tb)
	ctx := Context(tb)
	cl, err := guest.New(ctx, gc, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.Close() })
	return cl
}

// Listen serves a socket in a temporary directory of tb's, as `vmbus
// host` does, and returns its path.
func (h *Served) Listen(tb testing.TB) string {
	tb.Helper()
	socket := filepath.Join(tb.TempDir(), "bus.sock")
	l, err := transport.Listen(socket)
	if err != nil {
		tb.Fatal(err)
	}
	hh := h.Host
	h.serving.Go(func() { hh.Serve(l) })    //nolint:errcheck // ErrClosed at the end
	tb.Cleanup(func() { h.stopWithin(tb) }) // before the directory goes
	return socket
}

// Stop closes the host and waits for the goroutines serving it: the old
// process of a servicing ends, without a word to its guests. It may be
// called more than once.
func (h *Served) Stop() {
	h.Host.Close() //nolint:errcheck // ErrClosed when stopped before
	h.serving.Wait()
}

// stopWithin is Stop for a cleanup: a host that does not stop within
// Timeout fails tb rather than hang it (its goroutines are left, and a
// leak check reports them).
func (h *Served) stopWithin(tb testing.TB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Stop()
	}()
	select {
	case <-done:
	case <-time.After(Timeout):
		tb.Errorf("the host did not stop within %v", Timeout)
	}
}

// Save saves the host's guests (SaveGuests), each made its SavedGuest's
// own (Own), so that they outlive the host: the state a restore in the
// same process takes, as after a failed exec.
func (h *Served) Save(tb testing.TB) []host.SavedGuest {
	tb.Helper()
	saved, err := h.Host.SaveGuests()
	if err != nil {
		tb.Fatal(err)
	}
	Own(tb, saved)
	return saved
}

// Own makes the descriptors of SaveGuests' answer the SavedGuests' own
// (host.SavedGuest.Own), so that they outlive the saving host. If one
// cannot be, it closes them all and fails tb.
func Own(tb testing.TB, saved []host.SavedGuest) {
	tb.Helper()
	for i := range saved {
		if err := saved[i].Own(); err != nil {
			for j := range saved {
				saved[j].Close()
			}
			tb.Fatal(err)
		}
	}
}

// Restore restores a host of cfg from saved with host.Restore, closes
// saved, and serves the restored host in h.Host's place, not yet resumed.
// The old host should be stopped first (Stop).
func (h *Served) Restore(tb testing.TB, cfg host.Config, saved []host.SavedGuest) []*host.Guest {
	tb.Helper()
	return h.RestoreWith(tb, host.Restore, cfg, saved)
}

// RestoreWith is Restore by restore (host.Restore or host.RestoreOwned).
func (h *Served) RestoreWith(tb testing.TB, restore func(host.Config, []host.SavedGuest) (*host.Host, []*host.Guest, error), cfg host.Config, saved []host.SavedGuest) []*host.Guest {
	tb.Helper()
	h2, guests, err := restore(cfg, saved)
	for i := range saved {
		saved[i].Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	h.Host = h2
	return guests
}
