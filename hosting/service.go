package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/servicing"
	"github.com/govmbus/govmbus/transport"
)

// daemon is the running host: the bus, its listener and the devices. Its
// methods run on the daemon's main goroutine only.
type daemon struct {
	socket    string
	stateFile string
	devs      *hostDevices
	log       *slog.Logger
	h         *host.Host
	l         *transport.Listener
	served    chan error            // the running Serve's result
	hup       chan os.Signal        // SIGHUP, taken back after a failed exec
	count     uint32                // servicings so far
	spawn     bool                  // --servicing spawn: hand over to a successor started beforehand
	sup       *servicing.Supervisor // with --servicing spawn, the supervisor to announce this worker to
	spawned   bool                  // started by a spawned servicing
	rt        bool                  // --rt-blackout: the blackout runs at real-time priority
}

func (d *daemon) config() host.Config {
	return host.Config{Logger: d.log, OnGuest: d.devs.offer}
}

// serve starts accepting on l.
func (d *daemon) serve(l *transport.Listener) {
	d.l = l
	served := make(chan error, 1)
	d.served = served
	h := d.h
	go func() { served <- h.Serve(l) }()
}

// service is SIGHUP: pause, save, exec the successor. It returns only if
// the servicing failed; the daemon then serves on, and a non-nil error
// means it could not (the caller exits).
func (d *daemon) service() error {
	// With --servicing spawn the successor starts up first, while the
	// channels still run: its start is no part of the blackout.
	var succ *servicing.Successor
	if d.spawn {
		var err error
		if succ, err = d.spawnSuccessor(); err != nil {
			d.log.Error("servicing failed", "stage", "spawn", "err", err)
			return nil
		}
		// Ended on every way out but the successful handover, which
		// does not return.
		defer succ.Abort()
	}
	// Pre-flight, before anything pauses: the state is made for what
	// the successor reads, or not at all.
	reads, how, err := d.successorReads(succ)
	if err == nil {
		if what := unreadable(reads); what != "" {
			err = fmt.Errorf("the successor (%s) does not read %s", how, what)
		}
	}
	if err != nil {
		d.log.Error("servicing refused", "err", err)
		return nil
	}
	waitRestarts := !reads.Reads(channel.KindChannelRestart)
	if waitRestarts {
		d.log.Info("servicing waits for restartable packets", "reason", "the successor does not read channel-restart records", "successor", how)
	}
	d.devs.pauseWaitsForRestartable(waitRestarts)
	if d.rt {
		// Until the exec (the successor ends it), the handover (this
		// image exits), or the restore in this process after a failure.
		if err := servicing.Boost(); err != nil {
			d.log.Warn("blackout not boosted", "err", err)
		}
	}
	paused := time.Now()
	ph := newPhases(paused)
	// No collection during the blackout: it allocates little, and a
	// collection would take one of the few cores the guests leave.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// Stop accepting: a duplicate keeps the socket listening, so guests
	// that connect meanwhile wait in its backlog for the successor.
	lf, err := d.l.File()
	if err != nil {
		d.log.Error("servicing failed", "stage", "listener", "err", err)
		return nil
	}
	defer lf.Close()
	d.l.Close()
	<-d.served
	ph.mark("listener")
	resumeListener := func() error {
		l, err := transport.ListenerFromFile(lf)
		if err != nil {
			return fmt.Errorf("host: listen again after a failed servicing: %w", err)
		}
		d.serve(l)
		return nil
	}

	// Pause every server, then park and save the bus, then save the
	// channels (a guest cannot close a channel under its save). Guests come
	// and go meanwhile: one that is gone (its servers are closing) is no
	// part of the servicing, and SaveGuests tells which guests it saved,
	// by id.
	pausedSrv := make(map[vsp]bool)
	guests := d.devs.snapshot()
	unpause := func() {
		// Every server: one whose Pause failed may have been stopped.
		for _, gs := range guests {
			for _, s := range gs.servers {
				if s != nil {
					s.Start() //nolint:errcheck // a channel closed meanwhile needs nothing
				}
			}
		}
	}
	if gid, err := pauseGuests(guests, pausedSrv); err != nil {
		unpause()
		d.log.Error("servicing failed", "stage", "pause", "guest", gid, "err", err)
		return resumeListener()
	}
	ph.mark("pause")
	saved, err := d.h.SaveGuests()
	ph.mark("bus_save")
	if err != nil {
		unpause()
		d.log.Error("servicing failed", "stage", "save bus", "err", err)
		return resumeListener()
	}
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	// From here the guests are detached from this host: a failure is
	// recovered by restoring in this process from what was saved.
	st := &hostState{Count: d.count + 1, Devices: d.devs.values}
	// The exec is handed the descriptors this process serves on, by
	// number (borrowed: SaveGuests made no duplicates): valid until d.h
	// closes, which only the failure path below does.
	lfd, err := fileFD(lf)
	if err != nil {
		unpause()
		d.log.Error("servicing failed", "stage", "listener", "err", err)
		return resumeListener()
	}
	files := map[string]int{"listener": lfd}
	// A saved guest is parked, so OnGuest has run for it if it is due at
	// all: the guest has its servers now, or it has not made contact yet
	// and gets them through OnGuest once it does, after the restore.
	servers := make(map[uint64][]vsp)
	for _, gs := range d.devs.snapshot() {
		servers[gs.g.ID()] = gs.servers
	}
	// Each server is saved on its own goroutine (a few at a time): a save
	// is independent of every other, and a server paused only now (it
	// came after the pause above) waits for its guest's packets alone.
	type job struct {
		g, j int
		id   uint64
		s    vsp
		late bool // not paused above
	}
	var jobs []job
	for i := range saved {
		srv, ok := servers[saved[i].ID]
		g := &guestState{Index: uint32(i), Memory: saved[i].Memory.Valid(), NoServers: !ok, HelloPending: saved[i].HelloPending, Bus: saved[i].State, Channels: make([][][]byte, len(d.devs.specs))}
		files[fmt.Sprintf("g%d.conn", i)] = saved[i].Conn.Int()
		if saved[i].Memory.Valid() {
			files[fmt.Sprintf("g%d.mem", i)] = saved[i].Memory.Int()
		}
		g.Events = make([]eventState, 0, len(saved[i].Events))
		for _, e := range saved[i].Events {
			g.Events = append(g.Events, eventState{ChannelID: e.ChannelID, Dir: e.Dir})
			files[eventName(i, e.ChannelID, e.Dir)] = e.FD.Int()
		}
		for j, s := range srv {
			if s != nil {
				jobs = append(jobs, job{g: i, j: j, id: saved[i].ID, s: s, late: !pausedSrv[s]})
			}
		}
		st.Guests = append(st.Guests, g)
	}
	errs := make([]error, len(jobs))
	parallel(len(jobs), func(k int) {
		jb := jobs[k]
		if jb.late {
			if hc, ok := jb.s.(heldStarter); ok {
				hc.Channel().SetPauseWaitsForRestartable(waitRestarts)
			}
			if err := jb.s.Pause(); err != nil {
				errs[k] = fmt.Errorf("guest %d device %d: %w", jb.id, jb.j, err)
				return
			}
		}
		chunks, err := jb.s.Save()
		if err != nil {
			errs[k] = fmt.Errorf("guest %d device %d: %w", jb.id, jb.j, err)
			return
		}
		st.Guests[jb.g].Channels[jb.j] = chunks
	})
	saveErr := errors.Join(errs...)
	ph.mark("channel_save")
	state, err := st.encode(d.socket)
	if err == nil && saveErr == nil && len(reads.Missing(savedstate.Supported().Kinds)) > 0 {
		// A successor that reads less than this build: never hand it
		// a state it would refuse (the pause above should have kept
		// out what it does not read; this is the check).
		err = checkReadable(state, reads)
	}
	ph.mark("pack")
	if err == nil && saveErr == nil && d.stateFile != "" {
		err = writeFileAtomic(d.stateFile, state)
		ph.mark("state_file")
	}
	if err == nil && saveErr == nil && succ != nil {
		// This image reads nothing handed over from here on: a read of
		// a guest's eventfd would take what the successor waits for (the
		// parked control planes read nothing). Once the successor has
		// the handover, this image exits.
		d.relinquish()
		ph.mark("relinquish")
		if err = succ.Hand(servicing.Handover{FDs: files, State: state, Paused: paused, Note: ph.encode()}); err == nil {
			if err = succ.WaitReceived(successorServeTimeout); err == nil {
				servicing.ExitKeepingAddressSpace(0, teardownDelay)
			}
		}
		succ.Abort()
	} else if err == nil && saveErr == nil {
		var exe string
		if exe, err = os.Executable(); err == nil {
			ph.handOn()
			// SIGHUPs from here on are merged into this servicing. The
			// new image would die of one that comes before it asks for
			// SIGHUP again (Go's default), but keeps a SIG_IGN across the
			// exec and until its catchHUP.
			holdHUP()
			err = servicing.Exec(exe, os.Args, servicing.Handover{FDs: files, State: state, Paused: paused})
			releaseHUP(d.hup)
			os.Unsetenv(phasesEnv)
		}
	}
	d.log.Error("servicing failed; restoring in this process", "stage", "save or exec", "err", errors.Join(saveErr, err))
	if state, err = st.encode(d.socket); err != nil {
		return fmt.Errorf("host: servicing: %w", err)
	}
	// The descriptors are still the old host's: duplicates of them (off
	// the fast path, which needs none) outlive it, moved to owned for
	// adoptPhases to take over.
	owned, err := ownHandover(files, lf, saved)
	if err != nil {
		return fmt.Errorf("host: servicing: keep the saved descriptors: %w", err)
	}
	saved = nil
	// The old objects go first: closing a detached host sends the guests
	// nothing, and its guests' servers close with them.
	d.h.Close()
	d.devs.wait()
	return d.adoptPhases(state, owned, ph, false)
}

// spawnSuccessor starts a new image of this program for a spawned
// servicing and waits until it is ready for its handover.
func (d *daemon) spawnSuccessor() (*servicing.Successor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, phasesEnv+"=") || strings.HasPrefix(kv, warmUpEnv+"=")
	})
	channels := 0
	for _, gs := range d.devs.snapshot() {
		channels += len(gs.servers)
	}
	env = append(env, warmUpEnv+"="+strconv.Itoa(channels))
	if d.sup != nil {
		env = append(env, servicing.SupervisorVar+"=3")
	}
	succ, err := servicing.Spawn(exe, os.Args, env, d.sup.Files()...)
	if err != nil {
		return nil, err
	}
	if err := succ.WaitReady(successorReadyTimeout); err != nil {
		succ.Abort()
		return nil, fmt.Errorf("successor %d: %w", succ.Pid(), err)
	}
	return succ, nil
}

// adoptSpawned is the start of a successor spawned by a servicing: it
// warms up, says it is ready, takes the handover, announces itself to the
// supervisor, tells the predecessor (which exits then) and restores. It
// returns when the predecessor paused.
func (d *daemon) adoptSpawned(pred *servicing.Predecessor) (time.Time, error) {
	channels, _ := strconv.Atoi(os.Getenv(warmUpEnv))
	os.Unsetenv(warmUpEnv)
	gcPercent := warmUp(channels)
	defer debug.SetGCPercent(gcPercent)
	if d.rt {
		// Boosted already as it waits, so that it takes the boosted
		// predecessor's handover at once.
		if err := servicing.Boost(); err != nil {
			d.log.Warn("blackout not boosted", "err", err)
		}
	}
	// What this image reads, for the predecessor's pre-flight.
	if err := pred.ReadyWith(savedstate.Supported().AppendText(nil, false)); err != nil {
		return time.Time{}, fmt.Errorf("host: %w", err)
	}
	h, err := pred.Receive()
	if err != nil {
		pred.Fail(err)
		return time.Time{}, fmt.Errorf("host: %w", err)
	}
	// Known to the supervisor before the predecessor exits.
	if err := d.sup.Announce(); err != nil {
		pred.Fail(err)
		for _, fd := range h.FDs {
			syscall.Close(fd)
		}
		return time.Time{}, fmt.Errorf("host: %w", err)
	}
	pred.Received() //nolint:errcheck // a predecessor gone already is what comes next anyway
	return h.Paused, d.adoptPhases(h.State, h.FDs, spawnedPhases(h.Note, h.Paused), true)
}

// relinquish ends the receive goroutines of every (paused, saved) channel
// this image served, before it hands them to a spawned successor. After
// a failed handover this image restores them anew (adoptPhases), as after
// a failed exec.
func (d *daemon) relinquish() {
	var chans []*channel.Channel
	for _, gs := range d.devs.snapshot() {
		for _, s := range gs.servers {
			if hc, ok := s.(heldStarter); ok {
				chans = append(chans, hc.Channel())
			}
		}
	}
	parallel(len(chans), func(k int) {
		chans[k].Relinquish() //nolint:errcheck // one not open has no goroutine to end
	})
}

// teardownDelay is how long a spawned servicing's old image leaves its
// address space be after it exits: its teardown, a few milliseconds of
// CPU, then comes after the blackout instead of beside the restore.
const teardownDelay = 100 * time.Millisecond

// successorReadyTimeout bounds a spawned successor's start-up;
// successorServeTimeout its taking of the handover.
const (
	successorReadyTimeout = 10 * time.Second
	successorServeTimeout = 30 * time.Second
)

// ownHandover makes the saved guests' descriptors their own (duplicates
// of those borrowed from the host) and returns them, with a duplicate of
// the listener lf, by the names of files, for adoptPhases to take over.
// Whatever the outcome, saved's descriptors are closed or in the result.
func ownHandover(files map[string]int, lf *os.File, saved []host.SavedGuest) (map[string]int, error) {
	owned := make(map[string]int, len(files))
	fail := func(err error) (map[string]int, error) {
		for i := range saved {
			saved[i].Close()
		}
		for _, fd := range owned {
			syscall.Close(fd)
		}
		return nil, err
	}
	for i := range saved {
		if err := saved[i].Own(); err != nil {
			return fail(err)
		}
	}
	lfd, err := fileFD(lf)
	if err == nil {
		lfd, err = syscall.Dup(lfd)
	}
	if err != nil {
		return fail(err)
	}
	syscall.CloseOnExec(lfd)
	owned["listener"] = lfd
	for i := range saved {
		sg := &saved[i]
		owned[fmt.Sprintf("g%d.conn", i)] = sg.Conn.Int()
		if sg.Memory.Valid() {
			owned[fmt.Sprintf("g%d.mem", i)] = sg.Memory.Int()
		}
		for _, e := range sg.Events {
			owned[eventName(i, e.ChannelID, e.Dir)] = e.FD.Int()
		}
	}
	return owned, nil
}

// fileFD is f's descriptor. It does not use File.Fd, which would switch a
// non-blocking descriptor (shared with the live socket it was duplicated
// from) to blocking mode.
func fileFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// pauseGuests pauses the servers of guests, adding each to paused; on
// error it returns the guest whose server failed. Every server's packets
// are stopped first, at once (StopIndications), so that no channel goes on
// with its traffic while the others pause; then the servers are paused
// side by side (a few at a time): each Pause waits for its own packets. A
// guest that is gone is skipped: its servers close (or closed) with it,
// and SaveGuests does not save it.
func pauseGuests(guests []guestServers, paused map[vsp]bool) (uint64, error) {
	type job struct {
		gs guestServers
		s  vsp
	}
	var jobs []job
	for _, gs := range guests {
		for _, s := range gs.servers {
			if s != nil {
				jobs = append(jobs, job{gs, s})
			}
		}
	}
	for _, jb := range jobs {
		jb.s.StopIndications()
	}
	errs := make([]error, len(jobs))
	parallel(len(jobs), func(k int) {
		if err := jobs[k].s.Pause(); err != nil {
			select {
			case <-jobs[k].gs.g.Done():
				errs[k] = errGuestGone
			default:
				errs[k] = err
			}
		}
	})
	var gid uint64
	var first error
	for k, jb := range jobs {
		switch {
		case errs[k] == nil:
			paused[jb.s] = true
		case errs[k] != errGuestGone && first == nil:
			gid, first = jb.gs.g.ID(), errs[k]
		}
	}
	return gid, first
}

// errGuestGone marks a server whose Pause failed because its guest left.
var errGuestGone = errors.New("guest gone")

// maxParallel bounds the goroutines of parallel: the channel work it runs
// mostly waits (for a channel's worker, or a guest's packets).
const maxParallel = 128

// parallel runs fn(0) … fn(n-1), up to maxParallel at a time, and returns
// when all have returned.
func parallel(n int, fn func(int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, maxParallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				fn(k)
			}
		}()
	}
	for k := range n {
		next <- k
	}
	close(next)
	wg.Wait()
}

func eventName(guest int, channel uint32, dir transport.Direction) string {
	return fmt.Sprintf("g%d.ev%d.%d", guest, channel, dir)
}

// adopt continues a saved host: the successor's start, or a servicing
// that failed after the save. It takes the listener and the guests from
// files, descriptors it owns from then on (and closes them all, or hands
// them to the restored host), and starts serving. The state is untrusted:
// everything is checked before anything is built.
func (d *daemon) adopt(state []byte, files map[string]int, paused time.Time, successor bool) error {
	return d.adoptPhases(state, files, inheritedPhases(paused), successor)
}

// adoptPhases is adopt, timing its phases after those in ph.
func (d *daemon) adoptPhases(state []byte, files map[string]int, ph *phases, successor bool) error {
	ph.mark(ph.first)                                // the successor's start or handover, or nothing
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // as in service
	defer func() {
		for _, fd := range files {
			syscall.Close(fd)
		}
	}()
	st, err := parseHostState(state, d.socket)
	if err != nil {
		return fmt.Errorf("host: inherited state: %w", err)
	}
	if !slices.Equal(st.Devices, d.devs.values) {
		return fmt.Errorf("host: inherited state has devices %q, the flags %q", st.Devices, d.devs.values)
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
		sg.State, sg.HelloPending = g.Bus, g.HelloPending
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
	// Each channel is restored on its own goroutine (a few at a time); a
	// channel that does not restore is offered anew, and the guests'
	// servers are tracked, in order afterwards. A guest the bus did not
	// restore (nil; RestoreOwned logged why and disconnected it) has no
	// channels to restore.
	type job struct{ i, j int }
	var jobs []job
	servers := make([][]vsp, len(guests))
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
		servers[i] = make([]vsp, len(d.devs.specs))
		for j := range d.devs.specs {
			jobs = append(jobs, job{i, j})
		}
	}
	errs := make([]error, len(jobs))
	parallel(len(jobs), func(k int) {
		i, j := jobs[k].i, jobs[k].j
		servers[i][j], errs[k] = d.devs.restore(guests[i], j, st.Guests[i].Channels[j])
	})
	channels := 0
	for k, jb := range jobs {
		g := guests[jb.i]
		if errs[k] != nil {
			d.log.Error("device not restored; offered anew", "guest", g.ID(), "device", d.devs.values[jb.j], "err", errs[k])
			servers[jb.i][jb.j] = d.devs.fresh(g, jb.j)
		} else {
			channels++
		}
	}
	ph.mark("channel_restore")
	// Packets flow once every channel is restored.
	var restored []vsp
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
		if hc, ok := restored[k].(heldStarter); ok {
			hc.Channel().StartHeld() //nolint:errcheck // as Start below
			return
		}
		restored[k].Start() //nolint:errcheck // a channel its guest closed meanwhile needs nothing
	})
	for _, s := range restored {
		if hc, ok := s.(heldStarter); ok {
			hc.Channel().Release()
		}
	}
	for i, g := range guests {
		if g != nil && servers[i] != nil {
			d.devs.track(g, servers[i])
		}
	}
	h.Resume()
	d.serve(l)
	ph.mark("start")
	blackout := ph.last.Sub(ph.since) // every channel runs again
	if d.rt {
		if err := servicing.Unboost(); err != nil {
			d.log.Warn("blackout boost not ended", "err", err)
		}
	}
	d.count = st.Count
	d.log.Info("servicing complete",
		"blackout_ms", ms(blackout), "phases_ms", ph.logValue(),
		"servicing", st.Count, "guests", restoredGuests, "guests_dropped", len(guests)-restoredGuests, "channels", channels, "exec", successor, "spawned", d.spawned, "pid", os.Getpid())
	return nil
}

// heldStarter is a server whose channel can be started held (StartHeld,
// Release): echo's and blk's.
type heldStarter interface{ Channel() *channel.Channel }

// restore continues device j's server of guest g from its saved chunks,
// paused: Start lets its packets flow.
func (d *hostDevices) restore(g *host.Guest, j int, chunks [][]byte) (vsp, error) {
	if chunks == nil {
		return nil, errors.New("no saved state")
	}
	s := d.specs[j]
	switch s.kind {
	case "echo":
		return echo.RestorePausedServer(g, d.echoConfig(s), chunks)
	default:
		return blk.RestorePausedServer(g, s.file, d.blkConfig(s), chunks)
	}
}

// fresh gives up guest g's restored channel of device j, if any, and
// offers the device anew (nil if that fails too).
func (d *hostDevices) fresh(g *host.Guest, j int) vsp {
	g.Abandon(d.offerSpec(j)) //nolint:errcheck // nothing restored to abandon is fine
	s, err := d.newServer(g, j)
	if err != nil {
		d.log.Warn("offer", "guest", g.ID(), "device", d.specs[j].kind, "err", err)
		return nil
	}
	return s
}

// writeFileAtomic replaces path with data, so a reader sees the previous
// state or this one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vmbus-state-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// warmUpEnv tells a spawned successor how many channels its predecessor
// serves, for warmUp.
const warmUpEnv = "GOVMBUS_SUCCESSOR_CHANNELS"

// warmUp readies a spawned successor's memory for its restore of about
// channels channels, before it says it is ready. A page this process has
// not touched yet costs a page fault at its first touch, 3–6 µs on a
// virtual machine; the restore touches a few hundred of them (goroutine
// stacks, packet pools, the channels' objects). Heap and stacks touched
// here and freed are reused by the restore instead. The collector is set
// to leave them be (a high GOGC, so that the scavenger keeps them as well)
// until the servicing is over; warmUp returns the setting to restore then.
func warmUp(channels int) (gcPercent int) {
	// About 48 KiB of heap and two 16 KiB stacks per channel, as
	// counted in a 64-channel restore; at most 24 MiB of heap and 16 MiB
	// of stacks.
	channels = min(max(channels, 64), 512)
	sink := make([][]byte, 0, channels*24)
	for range cap(sink) {
		b := make([]byte, 2048)
		b[0], b[len(b)-1] = 1, 1 // fresh memory is not touched by make
		sink = append(sink, b)
	}
	var wg sync.WaitGroup
	for range 2 * channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deepStack(16)
		}()
	}
	wg.Wait()
	runtime.KeepAlive(sink)
	sink = nil
	gcPercent = debug.SetGCPercent(2000)
	runtime.GC()
	return gcPercent
}

// deepStack uses about n KiB of stack, so that its goroutine's stack grows
// to that size.
//
//go:noinline
func deepStack(n int) byte {
	var pad [1000]byte
	if n <= 0 {
		return pad[0]
	}
	pad[n%len(pad)] = byte(n)
	return deepStack(n-1) + pad[(n*7)%len(pad)]
}
