package hosting

import (
	"fmt"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hvsock"
)

// openRelays starts an hvsock server and the relays of Config.Relays,
// if any: they listen from New on, and guests reach them once the daemon
// serves.
func (d *Daemon) openRelays() error {
	if len(d.cfg.Relays) == 0 {
		return nil
	}
	routes, err := hvsock.ParseRoutes(d.cfg.Relays)
	if err != nil {
		return fmt.Errorf("%w: relay: %w", ErrDevice, err)
	}
	d.hv = hvsock.NewServer(hvsock.Config{Logger: d.log})
	for _, r := range routes {
		rl, err := d.hv.Relay(r)
		if err != nil {
			d.closeRelays()
			return fmt.Errorf("hosting: relay %v: %w", r, err)
		}
		d.relays = append(d.relays, rl)
	}
	return nil
}

// closeRelays ends every hvsock connection and relay and waits for them.
// The server goes first: its Close ends the connections' lingers at once,
// so that the relays' resets do not wait for a guest.
func (d *Daemon) closeRelays() {
	if d.hv == nil {
		return
	}
	d.hv.Close() //nolint:errcheck // once: hv is dropped below
	for _, rl := range d.relays {
		rl.Close() //nolint:errcheck // once: relays are dropped below
	}
	d.hv, d.relays = nil, nil
}

// abandonWaiting rescinds every restored channel no device took back:
// the hvsock connections, which are not carried across a servicing yet.
// Left waiting, a guest's connection would stall with nothing to tell it;
// rescinded, it reads a reset (ECONNRESET).
func (d *Daemon) abandonWaiting(guests []*host.Guest) {
	for _, g := range guests {
		if g == nil {
			continue
		}
		for _, spec := range g.Waiting() {
			d.log.Warn("channel not carried across the servicing: rescinded", "guest", g.ID(), "type", spec.InterfaceType, "instance", spec.InterfaceInstance)
			g.Abandon(spec) //nolint:errcheck // listed as waiting just now, under the daemon's one goroutine
		}
	}
}
