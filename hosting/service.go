package hosting

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/servicing"
	"github.com/govmbus/govmbus/transport"
)

// Service services the host: it pauses every device, saves the devices'
// channels and the bus, and hands everything to a successor, as
// Config.Servicing says. It returns only if the servicing failed (after
// a ServicingFailed event); the daemon then serves on, and a non-nil
// error means it could not (the caller exits). On success it does not
// return: an exec replaces this image, a spawned successor's
// predecessor exits. A daemon that does not serve (before Serve or an
// Adopt, or after Close) is not serviced: ErrNotServing, no event.
func (d *Daemon) Service() error { return d.service(context.Background(), nil) }

// ErrNotServing is the error of Service, ServiceContext and ServiceTo on
// a daemon that has not served yet or is closed: nothing was done.
var ErrNotServing = errors.New("hosting: the daemon does not serve")

// serving is nil while d serves, else why not, wrapping ErrNotServing.
func (d *Daemon) serving() error {
	switch {
	case d.closed:
		return fmt.Errorf("%w: it is closed", ErrNotServing)
	case d.h == nil:
		return fmt.Errorf("%w: it has not served yet (Serve, ServeFile or an Adopt method first)", ErrNotServing)
	}
	return nil
}

// ServiceContext is Service for a program that may be asked to stop while
// it services: once ctx is done (a SIGTERM through signal.NotifyContext),
// a servicing that has not handed over yet gives up, resumes serving and
// returns nil after a ServicingFailed event of Stage "stop", for the
// caller to stop the daemon in order. It looks at ctx before the
// pre-flight, after it (whose probe ctx ends too), and just before the
// exec (servicing.Exec's last moment, Handover.Stop) or the handover; a spawned successor that has taken the handover
// when ctx ends is sent SIGTERM, the request passed on. Only a stop that
// comes between the exec and the new image's signal.NotifyContext is not
// seen: it meets the runtime's default action, which ends the process
// (the package documentation, Stopping).
func (d *Daemon) ServiceContext(ctx context.Context) error { return d.service(ctx, nil) }

// ErrNotServiced is ServiceTo's error for a servicing that did not hand
// over: d serves on, next is left unused, and the error wraps why (the
// ServicingFailed event's stage and error).
var ErrNotServiced = errors.New("hosting: not serviced")

// ServiceTo services the host into next, a daemon in this process made by
// New with the same socket that has not served yet (it may have other
// kinds, an upgraded device, or other devices: Config.Devices says how
// they are matched). next adopts the saved state and
// the descriptors and serves; d is closed. It returns nil once next
// serves; ErrNotServiced when the servicing did not happen (refused,
// failed before the handover, or restored in d after its save) and d
// serves on; ErrNotServing when d does not serve (next is left unused);
// another error when d could not serve on either. It panics if
// next is nil, d itself, or a daemon that has served: a program's error.
func (d *Daemon) ServiceTo(next *Daemon) error {
	if next == nil || next.h != nil || next == d {
		panic("hosting: ServiceTo needs a new daemon")
	}
	if err := d.serving(); err != nil {
		return err
	}
	d.failed = nil
	err := d.service(context.Background(), next)
	if f := d.failed; err == nil && f != nil {
		d.failed = nil
		return fmt.Errorf("%w: %s: %w", ErrNotServiced, f.Stage, f.Err)
	}
	return err
}

// service is ServiceContext (to nil) or ServiceTo.
func (d *Daemon) service(ctx context.Context, to *Daemon) error {
	if err := d.serving(); err != nil {
		return err
	}
	mode := d.cfg.Servicing.String()
	if to != nil {
		mode = "in-process"
	}
	d.servicingCapture(true)
	defer d.servicingCapture(false)
	d.emit(&ServicingStarted{Servicing: d.count + 1, Mode: mode})
	if err := ctx.Err(); err != nil {
		d.emit(&ServicingFailed{Stage: "stop", Err: err})
		return nil
	}
	// With Spawn the successor starts up first, while the channels still
	// run: its start is no part of the blackout.
	var succ *servicing.Successor
	if to == nil && d.cfg.Servicing == Spawn {
		var err error
		if succ, err = d.spawnSuccessor(ctx); err != nil {
			stage := "spawn"
			if ctx.Err() != nil {
				stage = "stop"
			}
			d.emit(&ServicingFailed{Stage: stage, Err: err})
			return nil
		}
		// Ended on every way out but the successful handover, which
		// does not return.
		defer succ.Abort()
	}
	// Pre-flight, before anything pauses: the state is made for what
	// the successor reads, or not at all.
	reads, how, err := d.successorReads(ctx, succ, to)
	if ctx.Err() != nil {
		// The pre-flight can take long (a probe, a successor's start):
		// a stop asked for meanwhile is honoured before anything pauses.
		d.emit(&ServicingFailed{Stage: "stop", Err: ctx.Err()})
		return nil
	}
	if err == nil {
		if what := unreadable(reads, d.devs.savesDeviceState(), d.devs.hasTransferPageSets(), d.carriesConns()); what != "" {
			err = fmt.Errorf("the successor (%s) does not read %s", how, what)
		}
	}
	if err != nil {
		d.emit(&ServicingFailed{Stage: "preflight", Err: err})
		return nil
	}
	waitRestarts := !reads.Reads(channel.KindChannelRestart)
	if waitRestarts {
		d.log.Info("servicing waits for restartable packets", "reason", "the successor does not read channel-restart records", "successor", how)
	}
	d.devs.pauseWaitsForRestartable(waitRestarts)
	if d.cfg.RTBlackout {
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
		d.emit(&ServicingFailed{Stage: "listener", Err: err})
		return nil
	}
	defer lf.Close()
	d.l.Close()
	<-d.ended
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
	pausedSrv := make(map[Device]bool)
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
		d.emit(&ServicingFailed{Stage: "pause", Guest: gid, Err: err})
		return resumeListener()
	}
	// The relayed hvsock connections after the devices: each stops its
	// bytes at a clean point and pauses its channel.
	carried := d.pauseRelays()
	for _, c := range carried {
		if err := c.Check(); err != nil {
			unpause()
			resumeCarried(carried)
			d.resumeAccepts()
			d.emit(&ServicingFailed{Stage: "pause", Guest: c.Guest().ID(), Err: err})
			return resumeListener()
		}
	}
	ph.mark("pause")
	saved, err := d.h.SaveGuests()
	ph.mark("bus_save")
	if err != nil {
		unpause()
		resumeCarried(carried)
		d.resumeAccepts()
		d.emit(&ServicingFailed{Stage: "save bus", Err: err})
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
		resumeCarried(carried)
		d.resumeAccepts()
		d.emit(&ServicingFailed{Stage: "listener", Err: err})
		return resumeListener()
	}
	files := map[string]int{"listener": lfd}
	// A saved guest is parked, so OnGuest has run for it if it is due at
	// all: the guest has its servers now, or it has not made contact yet
	// and gets them through OnGuest once it does, after the restore.
	servers := make(map[uint64][]Device)
	for _, gs := range d.devs.snapshot() {
		servers[gs.g.ID()] = gs.servers
	}
	// Each server is saved on its own goroutine (a few at a time): a save
	// is independent of every other, and a server paused only now (it
	// came after the pause above) waits for its guest's packets alone.
	type job struct {
		g, j int
		id   uint64
		s    Device
		late bool // not paused above
	}
	var jobs []job
	// The guests' numbers, for a successor that reads them: another
	// numbers the guests anew, as releases before the record did.
	keepIDs := len(reads.Missing([]savedstate.Kind{kindHostGuestID})) == 0
	for i := range saved {
		srv, ok := servers[saved[i].ID]
		g := &guestState{Index: uint32(i), Memory: saved[i].Memory.Valid(), NoServers: !ok, HelloPending: saved[i].HelloPending, Bus: saved[i].State, Channels: make([][][]byte, len(d.devs.specs))}
		if keepIDs {
			g.ID = saved[i].ID
		}
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
			jb.s.Channel().Servicing().SetPauseWaitsForRestartable(waitRestarts)
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
	index := make(map[uint64]int, len(saved))
	for i := range saved {
		index[saved[i].ID] = i
	}
	// The connections the guests opened since the relays paused: the bus
	// is parked now, so no more come.
	late, lateErr := d.pauseRelaysLate()
	carried = append(carried, late...)
	// And those the guests asked for and have not opened: a successor
	// that reads them offers them on.
	if len(reads.Missing([]savedstate.Kind{kindHostHVSockOffer})) == 0 {
		d.saveOffers(d.pauseOffers(), index, st)
	}
	connFiles, connErr := saveCarried(carried, index, st, files)
	if connErr == nil {
		var lfiles []*os.File
		lfiles, connErr = d.handConnects(files)
		connFiles = append(connFiles, lfiles...)
	}
	defer func() {
		for _, f := range connFiles {
			f.Close()
		}
	}()
	saveErr := errors.Join(append(errs, connErr, lateErr)...)
	ph.mark("channel_save")
	state, err := st.encode(d.cfg.Socket)
	if err == nil && saveErr == nil && len(reads.Missing(savedstate.Supported().Kinds)) > 0 {
		// A successor that reads less than this build: never hand it
		// a state it would refuse (the pause above should have kept
		// out what it does not read; this is the check).
		err = checkReadable(state, reads)
	}
	ph.mark("pack")
	if err == nil && saveErr == nil && d.cfg.StateFile != "" {
		err = writeFileAtomic(d.cfg.StateFile, state)
		ph.mark("state_file")
	}
	// The program's own files, for the successor.
	var carriedFiles map[string]*os.File
	if err == nil && saveErr == nil {
		carriedFiles, err = d.askCarry(files)
	}
	stopped := false
	if err == nil && saveErr == nil && to == nil && ctx.Err() != nil {
		// The last look before the point of no return: an exec would
		// take the stop with this image.
		err, stopped = ctx.Err(), true
	}
	if err == nil && saveErr == nil {
		// The successor appends to the capture: this image's records
		// are in the file before it does, and none comes after.
		d.suspendCapture(to)
	}
	if err == nil && saveErr == nil && succ != nil {
		// This image reads nothing handed over from here on: a read of
		// a guest's eventfd would take what the successor waits for (the
		// parked control planes read nothing). Once the successor has
		// the handover, this image exits.
		d.relinquish()
		for _, c := range carried {
			c.Relinquish()
		}
		ph.mark("relinquish")
		if err = succ.Hand(servicing.Handover{FDs: files, State: state, Paused: paused, Note: ph.encode()}); err == nil {
			if err = succ.WaitReceived(successorServeTimeout); err == nil {
				if ctx.Err() != nil {
					// A stop that came after the last look is the
					// successor's now: it catches SIGTERM before it
					// takes a handover.
					syscall.Kill(succ.Pid(), syscall.SIGTERM) //nolint:errcheck // one that is gone has stopped
				}
				servicing.ExitKeepingAddressSpace(0, teardownDelay)
			}
		}
		succ.Abort()
	} else if err == nil && saveErr == nil && to != nil {
		// In this process: the successor takes duplicates of the
		// descriptors, this daemon's objects go (closing a detached host
		// sends the guests nothing), and the successor restores.
		owned, err := ownHandover(files, lf, saved)
		if err == nil {
			err = ownConns(files, owned)
		}
		if err != nil {
			return fmt.Errorf("host: servicing: keep the saved descriptors: %w", err)
		}
		saved = nil
		// The host first: a closed host's channels tell the guests
		// nothing as the relays close the connections carried.
		d.h.Close()
		d.closeRelays()
		d.devs.wait()
		d.devs.close()
		d.closeCapture()
		d.closed = true
		ph.first = "handover"
		to.carried = carriedFiles
		return to.adoptPhases(state, nil, owned, ph, true)
	} else if err == nil && saveErr == nil {
		var exe string
		if exe, err = os.Executable(); err == nil {
			ph.handOn()
			// SIGHUPs from here on are merged into this servicing. The
			// new image would die of one that comes before it asks for
			// SIGHUP again (Go's default), but keeps a SIG_IGN across the
			// exec and until it catches SIGHUP again (CatchHangup).
			if d.cfg.Hangup != nil {
				holdHUP()
			}
			// ctx is looked at once more just before the exec: a stop
			// caught here after the look above would be lost with this
			// image.
			err = servicing.Exec(exe, d.args(), servicing.Handover{FDs: files, State: state, Paused: paused, Stop: ctx.Done()})
			if errors.Is(err, servicing.ErrStopped) {
				err, stopped = ctx.Err(), true
			}
			if d.cfg.Hangup != nil {
				releaseHUP(d.cfg.Hangup)
			}
			os.Unsetenv(phasesEnv)
		}
	}
	d.resumeCapture() // this image serves on: so does its capture
	stage := "save or exec"
	if stopped {
		stage = "stop"
	}
	d.emit(&ServicingFailed{Stage: stage, Err: errors.Join(saveErr, err), Restoring: true})
	if state, err = st.encode(d.cfg.Socket); err != nil {
		return fmt.Errorf("host: servicing: %w", err)
	}
	// The descriptors are still the old host's: duplicates of them (off
	// the fast path, which needs none) outlive it, moved to owned for
	// adoptPhases to take over.
	owned, err := ownHandover(files, lf, saved)
	if err == nil && saveErr == nil {
		err = ownConns(files, owned)
	}
	if err != nil {
		return fmt.Errorf("host: servicing: keep the saved descriptors: %w", err)
	}
	saved = nil
	// The old objects go first: closing a detached host sends the guests
	// nothing, and its guests' servers close with them; then the
	// connections carried, which the restore takes back from the state.
	d.h.Close()
	d.devs.wait()
	for _, c := range carried {
		c.Drop()
	}
	return d.adoptPhases(state, nil, owned, ph, false)
}

// spawnSuccessor starts a new image of this program for a spawned
// servicing and waits until it is ready for its handover.
func (d *Daemon) spawnSuccessor(ctx context.Context) (*servicing.Successor, error) {
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
	if d.cfg.Supervisor != nil {
		env = append(env, servicing.SupervisorVar+"=3")
	}
	succ, err := servicing.Spawn(exe, d.args(), env, d.cfg.Supervisor.Files()...)
	if err != nil {
		return nil, err
	}
	if err := succ.WaitReadyContext(ctx, successorReadyTimeout); err != nil {
		succ.Abort()
		return nil, fmt.Errorf("successor %d: %w", succ.Pid(), err)
	}
	return succ, nil
}

// AdoptSpawned is the start of a successor spawned by a servicing
// (servicing.Spawned): it warms up, says it is ready, takes the handover,
// announces itself to the supervisor, tells the predecessor (which exits
// then), restores and serves. It returns when the predecessor paused.
func (d *Daemon) AdoptSpawned(pred *servicing.Predecessor) (time.Time, error) {
	d.spawned = true
	channels, _ := strconv.Atoi(os.Getenv(warmUpEnv))
	os.Unsetenv(warmUpEnv)
	gcPercent := warmUp(channels)
	defer debug.SetGCPercent(gcPercent)
	if d.cfg.RTBlackout {
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
	// A state this daemon cannot take (another socket's, or one that
	// does not parse) is refused while the predecessor can still restore
	// it, not after it has gone.
	st, err := d.parseState(h.State)
	if err != nil {
		pred.Fail(err)
		for _, fd := range h.FDs {
			syscall.Close(fd)
		}
		return time.Time{}, err
	}
	d.takeCarried(h.FDs)
	// Known to the supervisor before the predecessor exits.
	if err := d.cfg.Supervisor.Announce(); err != nil {
		pred.Fail(err)
		for _, fd := range h.FDs {
			syscall.Close(fd)
		}
		return time.Time{}, fmt.Errorf("host: %w", err)
	}
	pred.Received() //nolint:errcheck // a predecessor gone already is what comes next anyway
	return h.Paused, d.adoptPhases(h.State, st, h.FDs, spawnedPhases(h.Note, h.Paused), true)
}

// relinquish ends the receive goroutines of every (paused, saved) channel
// this image served, before it hands them to a spawned successor. After
// a failed handover this image restores them anew (adoptPhases), as after
// a failed exec.
func (d *Daemon) relinquish() {
	var chans []*channel.Channel
	for _, gs := range d.devs.snapshot() {
		for _, s := range gs.servers {
			if s != nil {
				chans = append(chans, s.Channel())
			}
		}
	}
	parallel(len(chans), func(k int) {
		chans[k].Servicing().Relinquish() //nolint:errcheck // one not open has no goroutine to end
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
func pauseGuests(guests []guestServers, paused map[Device]bool) (uint64, error) {
	type job struct {
		gs guestServers
		s  Device
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

// args are the successor's arguments.
func (d *Daemon) args() []string {
	if d.cfg.Args != nil {
		return d.cfg.Args
	}
	return os.Args
}
