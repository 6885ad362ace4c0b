package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// supervisorEnv gives a host worker the descriptor of its supervisor's
// pipe (see superviseHost).
const supervisorEnv = "GOVMBUS_SUPERVISOR"

// superviseHost is `vmbus host --servicing spawn` as started by a user: it
// keeps the process id that users and service managers signal and wait
// for, while the host itself runs in a worker child, started with the same
// arguments. A spawned servicing replaces the worker with a successor that
// the worker started; the successor, orphaned when its predecessor exits,
// becomes this process's child (PR_SET_CHILD_SUBREAPER). Each worker
// announces itself on a pipe once it serves. SIGHUP, SIGINT and SIGTERM
// are passed on to the worker that announced itself last; when that worker
// exits, so does the supervisor, with its status (128+n for a worker
// killed by signal n). It returns only if the first worker cannot start.
func superviseHost() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return failuref("host: become a subreaper: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return failuref("host: %v", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return failuref("host: pipe: %v", err)
	}
	// The workers' end blocks: an announcement is a few bytes, always
	// taken at once.
	if err := unix.SetNonblock(p[1], false); err != nil {
		return failuref("host: pipe: %v", err)
	}
	w := os.NewFile(uintptr(p[1]), "supervisor")
	// Caught before the worker starts, so none is lost to Go's default
	// action meanwhile.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	proc, err := os.StartProcess(exe, os.Args, &os.ProcAttr{
		Env:   append(os.Environ(), supervisorEnv+"=3"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, w},
		// Its own process group: a terminal's Ctrl-C reaches the
		// supervisor only, which passes it on once.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	w.Close()
	if err != nil {
		unix.Close(p[0])
		return failuref("host: start the worker: %v", err)
	}
	type exit struct {
		pid int
		ws  unix.WaitStatus
	}
	exits := make(chan exit)
	go func() {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				close(exits)
				return
			}
			exits <- exit{pid, ws}
		}
	}()
	ann := announcements{fd: p[0], current: proc.Pid}
	for {
		select {
		case s := <-sigs:
			unix.Kill(ann.latest(), s.(syscall.Signal)) //nolint:errcheck // one that is gone is reaped next
		case e, ok := <-exits:
			if !ok {
				os.Exit(exitFailure)
			}
			// A successor announces itself before its predecessor
			// exits: what it wrote is in the pipe by now.
			if e.pid != ann.latest() {
				continue
			}
			switch {
			case e.ws.Exited():
				os.Exit(e.ws.ExitStatus())
			case e.ws.Signaled():
				os.Exit(128 + int(e.ws.Signal()))
			}
			os.Exit(exitFailure)
		}
	}
}

// announcements reads the workers' process ids off the supervisor's pipe,
// one decimal line each.
type announcements struct {
	fd      int
	buf     []byte
	current int
}

// latest is the process id of the worker that announced itself last.
func (a *announcements) latest() int {
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
			a.current = pid
		}
		a.buf = a.buf[i+1:]
	}
	return a.current
}

// supervisor is a worker's end of its supervisor's pipe (nil without a
// supervisor).
type supervisor struct {
	f *os.File
}

// supervisorFromEnv takes the pipe a supervisor handed this worker, if
// any, and removes the variable from the environment.
func supervisorFromEnv() (*supervisor, error) {
	v, ok := os.LookupEnv(supervisorEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(supervisorEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("host: %s=%q", supervisorEnv, v)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil, fmt.Errorf("host: %s: descriptor %d is not a pipe", supervisorEnv, fd)
	}
	unix.CloseOnExec(fd)
	return &supervisor{f: os.NewFile(uintptr(fd), "supervisor")}, nil
}

// announce tells the supervisor that this process serves now.
func (s *supervisor) announce() error {
	if s == nil {
		return nil
	}
	_, err := s.f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return err
}

// file is the pipe, to hand on to a successor (nil without a supervisor).
func (s *supervisor) file() []*os.File {
	if s == nil {
		return nil
	}
	return []*os.File{s.f}
}
