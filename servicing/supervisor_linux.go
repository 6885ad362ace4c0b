package servicing

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SupervisorVar gives a host worker the descriptor of its supervisor's
// pipe (see Supervise).
const SupervisorVar = "GOVMBUS_SUPERVISOR"

// Supervise is a spawned-servicing host as started by a user: it keeps the
// process id that users and service managers signal and wait for, while
// the host itself runs in a worker child, started from this process's
// executable with args and the environment plus SupervisorVar. A spawned
// servicing replaces the worker with a successor that the worker started;
// the successor, orphaned when its predecessor exits, becomes this
// process's child (PR_SET_CHILD_SUBREAPER). Each worker announces itself
// on a pipe once it serves (Supervisor.Announce). SIGHUP, SIGINT and
// SIGTERM are passed on to the worker that announced itself last (a
// SIGHUP that comes before the first worker announced itself is held
// until it does: it would end a worker that does not yet catch it); when
// that worker exits, Supervise ends the children left (successors it was
// starting; one that announces itself within orphanGrace is supervised
// instead) and returns the status to exit with: the worker's, 128+n for a
// worker killed by signal n, 1 if it cannot tell.
// An error means the first worker could not start.
//
// Supervise reaps every child of the process: the caller must start none
// of its own.
func Supervise(args []string) (status int, err error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("become a subreaper: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, fmt.Errorf("pipe: %w", err)
	}
	// The workers' end blocks: an announcement is a few bytes, always
	// taken at once.
	if err := unix.SetNonblock(p[1], false); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return 0, fmt.Errorf("pipe: %w", err)
	}
	w := os.NewFile(uintptr(p[1]), "supervisor")
	// Caught before the worker starts, so none is lost to Go's default
	// action meanwhile.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	proc, err := os.StartProcess(exe, args, &os.ProcAttr{
		Env:   append(os.Environ(), SupervisorVar+"=3"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, w},
		// Its own process group: a terminal's Ctrl-C reaches the
		// supervisor only, which passes it on once.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	w.Close()
	if err != nil {
		unix.Close(p[0])
		return 0, fmt.Errorf("start the worker: %w", err)
	}
	defer unix.Close(p[0])
	// The reaper runs while the process has children: the caller exits
	// with the status Supervise returns, and with it the reaper.
	exits := make(chan exit, 1)
	go func() {
		defer close(exits)
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			exits <- exit{pid, ws}
		}
	}()
	ann := announcements{fd: p[0], current: proc.Pid}
	// A SIGHUP before the first worker announced itself is held until it
	// does: the worker starts with SIGHUP at its default action (an exec
	// resets the supervisor's caught signals), and until it catches
	// SIGHUP itself a passed-on one would end it. Several held are one
	// request, as SIGHUPs during a servicing are.
	var heldHUP <-chan time.Time
	var holdTicker *time.Ticker
	defer func() {
		if holdTicker != nil {
			holdTicker.Stop()
		}
	}()
	for {
		select {
		case s := <-sigs:
			pid, announced := ann.latest()
			if s == syscall.SIGHUP && !announced {
				if holdTicker == nil {
					holdTicker = time.NewTicker(announcePoll)
					heldHUP = holdTicker.C
				}
				continue
			}
			unix.Kill(pid, s.(syscall.Signal)) //nolint:errcheck // one that is gone is reaped next
		case <-heldHUP:
			if pid, announced := ann.latest(); announced {
				holdTicker.Stop()
				holdTicker, heldHUP = nil, nil
				unix.Kill(pid, syscall.SIGHUP) //nolint:errcheck // one that is gone is reaped next
			}
		case e, ok := <-exits:
			if !ok {
				return 1, nil
			}
			// A successor announces itself before its predecessor
			// exits: what it wrote is in the pipe by now.
			if pid, _ := ann.latest(); e.pid != pid {
				continue
			}
			took, ended := endOrphans(&ann, e.pid, exits)
			switch {
			case took && ended != nil:
				// It has ended too: its status is the host's.
				return exitStatus(ended.ws), nil
			case took:
				// A successor took over after its predecessor
				// died in the middle of the handover.
				continue
			}
			return exitStatus(e.ws), nil
		}
	}
}

// orphanGrace is how long a supervisor whose worker exited waits for one
// of its remaining children, a successor the worker spawned, to announce
// itself before it ends them.
const orphanGrace = 2 * time.Second

// endOrphans runs when the worker that announced itself last (pid) has
// exited. Its children, successors it was starting, are this process's
// now (a subreaper's). One that announces itself within orphanGrace took
// over a handover its predecessor did not live to see end: endOrphans
// returns took, and supervising goes on with it; if it has ended already
// (its exit came here), that exit too. Otherwise it kills every
// remaining child and reaps them (exits closes then): a successor left
// behind would outlive the host it was to continue, holding its guests'
// socket path and its log open.
func endOrphans(ann *announcements, pid int, exits <-chan exit) (took bool, ended *exit) {
	deadline := time.Now().Add(orphanGrace)
	tick := time.NewTicker(announcePoll)
	defer tick.Stop()
	for {
		// An announcement is written before its writer can exit, so
		// one read after an exit is never missed: the children are
		// listed first, and a successor gone from the list has
		// announced itself by the time the pipe is read. Its exit, if
		// not taken below, is still to come to the caller.
		kids := childPIDs()
		if h := testHookOrphanLook; h != nil {
			h()
		}
		if next, _ := ann.latest(); next != pid {
			return true, nil
		}
		if len(kids) == 0 {
			return false, nil
		}
		if time.Now().After(deadline) {
			for _, k := range kids {
				unix.Kill(k, unix.SIGKILL) //nolint:errcheck // one gone already is reaped
			}
		}
		select {
		case e, ok := <-exits:
			if !ok {
				return false, nil
			}
			if next, _ := ann.latest(); next != pid && e.pid == next {
				return true, &e
			}
		case <-tick.C:
		}
	}
}

// testHookOrphanLook, if set, runs in endOrphans between its look at the
// children and its look at the announcements.
var testHookOrphanLook func()

// exitStatus is the status a supervisor exits with for its worker's ws:
// the worker's, 128+n for a worker killed by signal n, 1 otherwise.
func exitStatus(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}

// childPIDs lists this process's children, whichever thread started them
// or, for orphans taken in as a subreaper, none did.
func childPIDs() []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	var pids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				pids = append(pids, c)
			}
		}
	}
	return pids
}

// exit is a child of the supervisor that ended, as Wait4 reports it.
type exit struct {
	pid int
	ws  unix.WaitStatus
}

// announcePoll is how often a supervisor holding a SIGHUP looks for the
// first worker's announcement.
const announcePoll = 5 * time.Millisecond

// announcements reads the workers' process ids off the supervisor's pipe,
// one decimal line each.
type announcements struct {
	fd        int
	buf       []byte
	current   int
	announced bool // a worker has announced itself
}

// latest is the process id of the worker that announced itself last (the
// first worker's before any did), and whether any did.
func (a *announcements) latest() (pid int, announced bool) {
	var b [512]byte
	for {
		n, err := unix.Read(a.fd, b[:])
		if n <= 0 || err != nil {
			break
		}
		a.buf = append(a.buf, b[:n]...)
	}
	for {
		i := bytes.IndexByte(a.buf, '\n')
		if i < 0 {
			break
		}
		if pid, err := strconv.Atoi(string(a.buf[:i])); err == nil && pid > 0 {
			a.current, a.announced = pid, true
		}
		a.buf = a.buf[i+1:]
	}
	return a.current, a.announced
}

// Supervisor is a worker's end of its supervisor's pipe. A nil
// *Supervisor is a worker without a supervisor: its methods do nothing.
type Supervisor struct {
	f *os.File
}

// SupervisorFromEnv takes the pipe a supervisor handed this worker, if
// any (nil, nil if none), and removes SupervisorVar from the environment.
func SupervisorFromEnv() (*Supervisor, error) {
	v, ok := os.LookupEnv(SupervisorVar)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(SupervisorVar)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("host: %s=%q", SupervisorVar, v)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("host: %s: descriptor %d is not a pipe", SupervisorVar, fd)
	}
	unix.CloseOnExec(fd)
	return &Supervisor{f: os.NewFile(uintptr(fd), "supervisor")}, nil
}

// Announce tells the supervisor that this process serves now.
func (s *Supervisor) Announce() error {
	if s == nil {
		return nil
	}
	_, err := s.f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return err
}

// Files is the pipe, to hand on to a spawned successor as its descriptor
// 3 (with SupervisorVar=3 in its environment); nil without a supervisor.
func (s *Supervisor) Files() []*os.File {
	if s == nil {
		return nil
	}
	return []*os.File{s.f}
}

// Watch starts watching for the supervisor's end: gone is closed once the
// supervisor has exited, whatever ended it (its end of the pipe closes,
// which the kernel reports to this end as an error). A worker whose
// supervisor was killed outright has nobody left to pass it the signals
// of those who run the host, and nobody who waits for it: it should stop
// as it does on SIGTERM rather than serve on unseen. stop ends the watch
// and waits for it. On a nil *Supervisor gone is never closed.
func (s *Supervisor) Watch() (gone <-chan struct{}, stop func()) {
	if s == nil {
		return nil, func() {}
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, func() {}
	}
	g, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		fds := []unix.PollFd{{Fd: int32(s.f.Fd())}, {Fd: int32(wake), Events: unix.POLLIN}}
		for {
			fds[0].Revents, fds[1].Revents = 0, 0
			_, err := unix.Poll(fds, -1)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil, fds[1].Revents != 0:
				return
			case fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0:
				close(g)
				return
			}
		}
	}()
	var once sync.Once
	return g, func() {
		once.Do(func() {
			unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 0}) //nolint:errcheck // a counter far from full
			<-done
			unix.Close(wake)
		})
	}
}
