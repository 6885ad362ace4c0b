package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestE2ESupervisorHoldsEarlyHUP storms a --servicing spawn host's
// supervisor with SIGHUP from the moment its first worker exists: the
// worker starts with SIGHUP at its default action, and one passed on
// before the worker catches SIGHUP itself would end it (the supervisor
// then exits 129). The supervisor holds such a SIGHUP until the worker
// has announced itself: every host must come up, service, and still run.
func TestE2ESupervisorHoldsEarlyHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 hosts")
	}
	bin := vmbusBinary(t)
	const runs = 20
	var failed []string
	for i := range runs {
		if msg := stormFromStart(t, bin); msg != "" {
			failed = append(failed, fmt.Sprintf("host %d: %s", i, msg))
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d spawn-mode hosts failed a SIGHUP storm from their start:\n%s", len(failed), runs, strings.Join(failed, "\n"))
	}
}

// stormFromStart starts one spawn-mode host, sends its supervisor SIGHUP
// without pause from the moment the supervisor has a child until the
// first servicing completes, then checks that it still runs and ends it.
// It returns what went wrong, or "".
func stormFromStart(t *testing.T, bin string) string {
	socket := filepath.Join(t.TempDir(), "bus.sock")
	cmd := exec.Command(bin, "host", "--socket", socket, "--device", "echo", "--servicing", "spawn", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	msgs, read := logMessages(stderr)
	// The supervisor catches SIGHUP before it starts its worker: once it
	// has a child, a SIGHUP is its to handle.
	// Each failure below ends the supervisor's children too: a worker
	// left running would hold the log pipe open.
	kill := func() {
		killTree(pid)
		cmd.Process.Kill()
		awaitLogEnd(t, read, stderr)
		cmd.Wait()
	}
	for deadline := time.Now().Add(10 * time.Second); len(childrenOf(pid)) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			kill()
			return "the supervisor started no worker within 10 s"
		}
	}
	stop, stormed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stormed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if syscall.Kill(pid, syscall.SIGHUP) != nil {
				return
			}
		}
	}()
	serviced := false
	for timeout := time.After(30 * time.Second); !serviced; {
		select {
		case m := <-msgs:
			serviced = m == "servicing complete"
		case <-read:
			close(stop)
			<-stormed
			err := cmd.Wait()
			return fmt.Sprintf("exited before its first servicing: %v", err)
		case <-timeout:
			close(stop)
			<-stormed
			kill()
			return "no servicing within 30 s"
		}
	}
	close(stop)
	<-stormed
	// The host survived the storm and serviced: that is what is judged.
	// It is then ended with all its processes (a spawned successor the
	// storm asked for may be starting; how a host stops in the middle of
	// a spawn is not what this test is about).
	alive := running(pid)
	kill()
	if !alive {
		return "the supervisor had exited by the end of the storm"
	}
	return ""
}

// killTree kills every descendant of pid, children first found, then
// theirs, until none is left.
func killTree(pid int) {
	for range 100 {
		kids := childrenOf(pid)
		if len(kids) == 0 {
			return
		}
		for _, c := range kids {
			killTree(c)
			syscall.Kill(c, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childrenOf lists the children of process pid, whichever of its threads
// started them.
func childrenOf(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
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

// TestE2EWorkerStopsWithSupervisor kills a spawn-mode host's supervisor
// outright (SIGKILL, which it cannot pass on) after a servicing, when the
// worker is a successor the supervisor did not start: the worker must see
// it and stop, rather than serve on with nobody to signal it (and hold
// the log open, as it did when a test missed it).
func TestE2EWorkerStopsWithSupervisor(t *testing.T) {
	pid, wait, read, end := spawnModeHost(t)
	defer end()
	wait("host listening", 30*time.Second)
	syscall.Kill(pid, syscall.SIGHUP)
	wait("servicing complete", 30*time.Second)
	syscall.Kill(pid, syscall.SIGKILL)
	wait("supervisor gone: stopping", 30*time.Second)
	select {
	case <-read:
	case <-time.After(15 * time.Second):
		t.Errorf("the worker still runs 15 s after its supervisor was killed")
	}
}

// TestE2ESupervisorLogsKilledWorker: a spawn-mode host whose host process
// (its worker) is killed outright exits with the worker's status, and
// says why in its log; it exited 137 without a word.
func TestE2ESupervisorLogsKilledWorker(t *testing.T) {
	pid, wait, read, end := spawnModeHost(t)
	defer end()
	wait("host listening", 30*time.Second)
	workers := childrenOf(pid)
	if len(workers) != 1 {
		t.Fatalf("the supervisor has %d children, want its worker", len(workers))
	}
	syscall.Kill(workers[0], syscall.SIGKILL)
	wait("host process killed", 15*time.Second)
	select {
	case <-read: // the supervisor exited: end's kill comes after
	case <-time.After(15 * time.Second):
		t.Fatal("the supervisor still runs 15 s after its log said the host process was killed")
	}
	var ee *exec.ExitError
	if err := end(); !errors.As(err, &ee) || ee.ExitCode() != 137 {
		t.Fatalf("the supervisor exited %v, want 137 (the worker's SIGKILL)", err)
	}
}

// spawnModeHost starts a spawn-mode `vmbus host` with a JSON log and
// returns its pid, a wait for a log message (bounded by limit), the
// channel closed at the log's end, and its exit, which also ends every
// process it left (run it deferred; it may be called twice).
func spawnModeHost(t *testing.T) (pid int, wait func(msg string, limit time.Duration), read <-chan struct{}, end func() error) {
	t.Helper()
	cmd := exec.Command(vmbusBinary(t), "host", "--socket", filepath.Join(t.TempDir(), "bus.sock"), "--device", "echo", "--servicing", "spawn", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	msgs, read := logMessages(stderr)
	wait = func(msg string, limit time.Duration) {
		t.Helper()
		for timeout := time.After(limit); ; {
			select {
			case m := <-msgs:
				if m == msg {
					return
				}
			case <-read:
				t.Fatalf("the host's log ended before %q", msg)
			case <-timeout:
				t.Fatalf("no %q within %v", msg, limit)
			}
		}
	}
	var once sync.Once
	var werr error
	end = func() error {
		once.Do(func() {
			killTree(pid)
			cmd.Process.Kill()
			awaitLogEnd(t, read, stderr)
			werr = cmd.Wait()
		})
		return werr
	}
	return pid, wait, read, end
}
