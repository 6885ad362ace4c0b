package hosting

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/servicing"
	"github.com/govmbus/govmbus/transport"
)

// parseState parses an inherited state for this daemon (its socket).
func (d *Daemon) parseState(state []byte) (*hostState, error) {
	st, err := parseHostState(state, d.cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("host: inherited state: %w", err)
	}
	return st, nil
}

// matchDevices maps this daemon's devices to the saved ones: the k-th
// device of a value takes the saved channels of the k-th saved device of
// the same value, and -1 marks a device the predecessor did not serve (an
// upgrade that adds it), which is offered anew. A saved device left
// unmatched (one the upgrade removes) has its channels rescinded with the
// others nobody took back (abandonWaiting).
func matchDevices(saved, now []string) []int {
	used := make([]bool, len(saved))
	m := make([]int, len(now))
	for j, v := range now {
		m[j] = -1
		for k, sv := range saved {
			if !used[k] && sv == v {
				used[k], m[j] = true, k
				break
			}
		}
	}
	return m
}

// adoptPhases continues a saved host: the successor's start, or a
// servicing that failed after the save. It takes the listener and the
// guests from files, descriptors it owns from then on (and closes them
// all, or hands them to the restored host), and starts serving, timing
// its phases after those in ph. The state is untrusted: everything is
// checked before anything is built; st is state parsed already, if the
// caller did (nil: parsed here).
func (d *Daemon) adoptPhases(state []byte, st *hostState, files map[string]int, ph *phases, successor bool) error {
	ph.mark(ph.first)                                // the successor's start or handover, or nothing
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // as in service
	defer func() {
		for _, fd := range files {
			syscall.Close(fd)
		}
	}()
	if st == nil {
		var err error
		if st, err = d.parseState(state); err != nil {
			return err
		}
	}
	lfd, ok := files["listener"]
	if !ok {
		return errors.New("host: inherited state: no listener")
	}
	// The guests' files move from files to saved, for RestoreOwned to
	// take over: each is in one of the two, which are closed on return.
	saved := make([]host.SavedGuest, len(st.Guests))
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	take := func(name string) host.FD {
		fd, ok := files[name]
		if !ok {
			return host.FD{}
		}
		delete(files, name)
		return host.OwnedFD(fd)
	}
	// A guest whose files are missing is left without them: the restore
	// refuses that guest alone (and says why), as any other guest's state
	// it cannot restore.
	for i, g := range st.Guests {
		sg := &saved[i]
		sg.Conn = take(fmt.Sprintf("g%d.conn", i))
		if g.Memory {
			sg.Memory = take(fmt.Sprintf("g%d.mem", i))
		}
		sg.Events = make([]host.SavedEvent, 0, len(g.Events))
		for _, e := range g.Events {
			if fd := take(eventName(i, e.ChannelID, e.Dir)); fd.Valid() {
				sg.Events = append(sg.Events, host.SavedEvent{ChannelID: e.ChannelID, Dir: e.Dir, FD: fd})
			}
		}
		sg.ID, sg.State, sg.HelloPending = g.ID, g.Bus, g.HelloPending
	}
	lf := os.NewFile(uintptr(lfd), "listener")
	delete(files, "listener")
	l, err := transport.ListenerFromFile(lf)
	lf.Close() // l has a duplicate, if any
	if err != nil {
		return fmt.Errorf("host: inherited listener: %w", err)
	}
	ph.mark("parse")
	h, guests, err := host.RestoreOwned(d.config(), saved)
	ph.mark("bus_restore")
	if err != nil {
		l.Close()
		return err
	}
	d.h = h
	if err := d.openCapture(h, successor); err != nil {
		// The bus is not lost for want of its capture.
		d.log.Error("capture not continued", "err", err)
	}
	// Each channel is restored on its own goroutine (a few at a time); a
	// channel that does not restore is offered anew, and the guests'
	// servers are tracked, in order afterwards. A guest the bus did not
	// restore (nil; RestoreOwned logged why and disconnected it) has no
	// channels to restore.
	type job struct{ i, j int }
	var jobs []job
	servers := make([][]Device, len(guests))
	restoredGuests := 0
	for i := range guests {
		if guests[i] == nil {
			continue
		}
		restoredGuests++
		if st.Guests[i].NoServers {
			// Saved before its OnGuest: the restored host calls
			// OnGuest when the guest makes contact.
			continue
		}
		servers[i] = make([]Device, len(d.devs.specs))
		for j := range d.devs.specs {
			jobs = append(jobs, job{i, j})
		}
	}
	match := matchDevices(st.Devices, d.devs.values)
	if !slices.Equal(st.Devices, d.devs.values) {
		d.log.Info("devices changed by the servicing", "before", st.Devices, "after", d.devs.values)
	}
	errs := make([]error, len(jobs))
	parallel(len(jobs), func(k int) {
		i, j := jobs[k].i, jobs[k].j
		if m := match[j]; m >= 0 {
			servers[i][j], errs[k] = d.devs.restore(guests[i], j, st.Guests[i].Channels[m])
		} else {
			errs[k] = errNewDevice
		}
	})
	channels := 0
	for k, jb := range jobs {
		g := guests[jb.i]
		switch {
		case errs[k] == nil:
			channels++
		case errors.Is(errs[k], errNewDevice):
			d.log.Info("device added: offered", "guest", g.ID(), "device", d.devs.values[jb.j])
			servers[jb.i][jb.j] = d.devs.fresh(g, jb.j)
		default:
			d.log.Error("device not restored; offered anew", "guest", g.ID(), "device", d.devs.values[jb.j], "err", errs[k])
			servers[jb.i][jb.j] = d.devs.fresh(g, jb.j)
		}
	}
	ph.mark("channel_restore")
	// Packets flow once every channel is restored.
	var restored []Device
	for k, jb := range jobs {
		if errs[k] == nil {
			restored = append(restored, servers[jb.i][jb.j])
		}
	}
	// Every channel is started held, then all are released at once: a
	// channel live early would wake its guest, and the guests' threads
	// would take the CPUs from the start of the channels after it (a
	// start is a round trip to the channel's worker).
	parallel(len(restored), func(k int) {
		restored[k].StartHeld() //nolint:errcheck // a channel its guest closed meanwhile needs nothing
	})
	for _, s := range restored {
		s.Release()
	}
	for i, g := range guests {
		if g != nil && servers[i] != nil {
			d.devs.track(g, servers[i])
		}
	}
	// The relayed hvsock connections, on their channels restored by
	// the bus; what none took back is rescinded.
	d.adoptConnects(files)
	if n, toLocal, toGuest := d.restoreConns(guests, st.Conns, files); len(st.Conns) > 0 {
		d.log.Info("hvsock connections carried", "carried", n, "saved", len(st.Conns), "to_local_bytes", toLocal, "to_guest_bytes", toGuest)
	}
	if n := d.restoreOffers(guests, st.Offers); len(st.Offers) > 0 {
		d.log.Info("hvsock offers carried", "carried", n, "saved", len(st.Offers))
	}
	d.abandonWaiting(guests)
	h.Resume()
	d.serve(l)
	ph.mark("start")
	blackout := ph.last.Sub(ph.since) // every channel runs again
	if d.cfg.RTBlackout {
		if err := servicing.Unboost(); err != nil {
			d.log.Warn("blackout boost not ended", "err", err)
		}
	}
	d.count = st.Count
	d.emit(&ServicingComplete{Servicing: st.Count, Blackout: blackout.Truncate(time.Microsecond), Phases: ph.list(),
		Guests: restoredGuests, GuestsDropped: len(guests) - restoredGuests, Channels: channels, Exec: successor, Spawned: d.spawned, Pid: os.Getpid()})
	return nil
}

// errNoSavedState is a device whose channel the predecessor did not save.
var errNoSavedState = errors.New("no saved state")

// errNewDevice is a device the predecessor did not serve.
var errNewDevice = errors.New("a device the predecessor did not serve")
