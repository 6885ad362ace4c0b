package testbus

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
)

// DefaultMemory is a Bus guest's memory when its Config names none.
const DefaultMemory = 8 << 20

// Config is what a Bus is made of.
type Config struct {
	// Host is the host's configuration. Its OnGuest, if any, runs before
	// New takes the guest: a device server made there is ready when New
	// returns.
	Host host.Config
	// Guest is the guest client's; a MemorySize of 0 is DefaultMemory.
	Guest guest.Config
}

// Bus is a host and one guest client in one process.
type Bus struct {
	*Served
	// Guest is the host's view of the guest: the restored one after
	// Restore.
	Guest *host.Guest
	// Client is the guest's end.
	Client *guest.Client
}

// New starts a host of cfg.Host and connects a guest client of cfg.Guest
// to it, both closed when tb ends.
func New(tb testing.TB, cfg Config) *Bus {
	tb.Helper()
	guests := make(chan *host.Guest, 1)
	onGuest := cfg.Host.OnGuest
	cfg.Host.OnGuest = func(g *host.Guest) {
		if onGuest != nil {
			onGuest(g)
		}
		select {
		case guests <- g:
		default: // only the first guest is the Bus's
		}
	}
	if cfg.Guest.MemorySize == 0 {
		cfg.Guest.MemorySize = DefaultMemory
	}
	b := &Bus{Served: NewServed(tb, cfg.Host)}
	b.Client = b.Connect(tb, cfg.Guest)
	select {
	case b.Guest = <-guests:
	case <-time.After(Timeout):
		tb.Fatal("the host did not take the guest")
	}
	return b
}

// Restore is Served.Restore that takes the restored host's first guest as
// b.Guest.
func (b *Bus) Restore(tb testing.TB, cfg host.Config, saved []host.SavedGuest) []*host.Guest {
	tb.Helper()
	guests := b.Served.Restore(tb, cfg, saved)
	if len(guests) == 0 {
		tb.Fatal("no guest restored")
	}
	b.Guest = guests[0]
	return guests
}
