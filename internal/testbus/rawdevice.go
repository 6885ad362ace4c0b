package testbus

import (
	"context"
	"sync"

	"github.com/govmbus/govmbus/host"
)

// RawDevice is a host.Device whose channels a test drives by hand, below
// any VSP: the rings, events and guest memory of each open channel go to
// Serve, which may write whatever a hostile host would. Serve runs on a
// goroutine of its own from Open until the channel closes: its ctx ends
// then, and Close waits for it to return, so Serve must not block on
// anything but ctx (Event.Wait takes it).
type RawDevice struct {
	Spec  host.OfferSpec
	Serve func(ctx context.Context, ch *host.Channel)

	mu      sync.Mutex
	running map[*host.Channel]func() // stops a channel's Serve and waits
}

// Offer is the device's offer.
func (d *RawDevice) Offer() host.OfferSpec { return d.Spec }

// Open starts Serve for ch.
func (d *RawDevice) Open(ch *host.Channel) error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Serve(ctx, ch)
	}()
	d.mu.Lock()
	if d.running == nil {
		d.running = make(map[*host.Channel]func())
	}
	d.running[ch] = func() { cancel(); <-done }
	d.mu.Unlock()
	return nil
}

// Close stops ch's Serve and waits for it.
func (d *RawDevice) Close(ch *host.Channel) {
	d.mu.Lock()
	stop := d.running[ch]
	delete(d.running, ch)
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}
