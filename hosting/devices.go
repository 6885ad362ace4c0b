package hosting

import (
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/govmbus/govmbus/host"
)

// devices offers the daemon's devices to each guest, keeps each guest's
// servers for servicing and closes them when the guest leaves.
type devices struct {
	specs  []Spec
	names  []string // each spec's group: the metrics' device label
	values []string // the device values, shorthands expanded, in order: what a successor must be given too
	log    *slog.Logger
	poll   time.Duration     // each server channel's poll budget
	onNew  func(*host.Guest) // Config.OnGuest
	wg     sync.WaitGroup

	mu     sync.Mutex
	guests map[*host.Guest][]Device
}

// guestServers is one guest and its servers, one per device (nil where
// the device could not be offered).
type guestServers struct {
	g       *host.Guest
	servers []Device
}

// offer is host.Config.OnGuest: one server per device for guest g, closed
// once g is gone.
func (d *devices) offer(g *host.Guest) {
	servers := make([]Device, len(d.specs))
	for j := range d.specs {
		srv, err := d.specs[j].New(g)
		if err != nil {
			d.log.Warn("offer", "guest", g.ID(), "device", d.names[j], "err", err)
			continue
		}
		servers[j] = srv
	}
	d.track(g, servers)
}

// track keeps g's servers until g is gone, then closes them. Every
// server passes here, offered or restored, so it sets their poll budget.
func (d *devices) track(g *host.Guest, servers []Device) {
	for _, s := range servers {
		if s != nil {
			s.Channel().SetPoll(d.poll) //nolint:errcheck // Config.Poll is checked by New
		}
	}
	d.mu.Lock()
	d.guests[g] = servers
	d.mu.Unlock()
	if d.onNew != nil {
		d.onNew(g)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-g.Done()
		d.mu.Lock()
		delete(d.guests, g)
		d.mu.Unlock()
		for _, s := range servers {
			if s != nil {
				s.Close() //nolint:errcheck // the guest is gone; nothing to tell
			}
		}
	}()
}

// snapshot is every tracked guest and its servers, by guest id.
func (d *devices) snapshot() []guestServers {
	d.mu.Lock()
	out := make([]guestServers, 0, len(d.guests))
	for g, s := range d.guests {
		out = append(out, guestServers{g: g, servers: s})
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].g.ID() < out[j].g.ID() })
	return out
}

// wait waits until every guest's servers are closed.
func (d *devices) wait() { d.wg.Wait() }

// close releases the specs; after wait.
func (d *devices) close() {
	for _, s := range d.specs {
		s.Close() //nolint:errcheck // nothing serves on it any more
	}
}

// restore continues device j's server of guest g from its saved chunks,
// paused: Start lets its packets flow.
func (d *devices) restore(g *host.Guest, j int, chunks [][]byte) (Device, error) {
	if chunks == nil {
		return nil, errNoSavedState
	}
	return d.specs[j].Restore(g, chunks)
}

// fresh gives up guest g's restored channel of device j, if any, and
// offers the device anew (nil if that fails too).
func (d *devices) fresh(g *host.Guest, j int) Device {
	g.Abandon(d.specs[j].Offer()) //nolint:errcheck // nothing restored to abandon is fine
	s, err := d.specs[j].New(g)
	if err != nil {
		d.log.Warn("offer", "guest", g.ID(), "device", d.names[j], "err", err)
		return nil
	}
	return s
}

// pauseWaitsForRestartable sets every server channel's Pause to wait for
// restartable packets, or not (channel.Channel.SetPauseWaitsForRestartable),
// for the servicing about to pause them.
func (d *devices) pauseWaitsForRestartable(wait bool) {
	for _, gs := range d.snapshot() {
		for _, s := range gs.servers {
			if s != nil {
				s.Channel().Servicing().SetPauseWaitsForRestartable(wait)
			}
		}
	}
}

// hasTransferPageSets reports whether any server channel now served has
// a transfer page set (a channel-transfer-pages record).
func (d *devices) hasTransferPageSets() bool {
	for _, gs := range d.snapshot() {
		for _, s := range gs.servers {
			if s != nil && s.Channel().Servicing().HasTransferPageSets() {
				return true
			}
		}
	}
	return false
}

// savesDeviceState reports whether any server channel now served has
// state of its device's own to save (a channel-device record).
func (d *devices) savesDeviceState() bool {
	for _, gs := range d.snapshot() {
		for _, s := range gs.servers {
			if s != nil && s.Channel().Servicing().SavesDeviceState() {
				return true
			}
		}
	}
	return false
}
