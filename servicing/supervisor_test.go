package servicing

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// workerRoleVar tells the test binary, playing a supervisor, which role
// its worker plays.
const workerRoleVar = "GOVMBUS_SERVICING_TEST_WORKER"

// holdLookVar, set, has the test binary playing a supervisor hold
// endOrphans between its two looks until no child is left
// (testHookOrphanLook, waitNoChildren).
const holdLookVar = "GOVMBUS_SERVICING_TEST_HOLD_LOOK"

// waitNoChildren waits until this process has no child left, for at most
// 10 s.
func waitNoChildren() {
	for end := time.Now().Add(10 * time.Second); len(childPIDs()) > 0 && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
}

// supervisedRole is the test binary as a supervisor's worker or a
// successor it started:
//   - "orphaning-worker" announces itself, starts a child that would run
//     for a minute (a successor still starting, as far as the supervisor
//     can tell), prints the child's pid and exits 0;
//   - "dying-worker" announces itself, starts a "late-successor" with the
//     supervisor's pipe, and exits 0 at once, as a worker that died in
//     the middle of its handover;
//   - "late-successor" announces itself 300 ms later and exits 7;
//   - "dying-worker-quick" is "dying-worker" with a "quick-successor",
//     which announces itself 100 ms later and exits 7 at once, so that
//     its end comes while the supervisor waits for orphans to announce
//     themselves;
//   - "watching-worker" announces itself, prints its supervisor's pid and
//     says "gone" once Watch reports the supervisor's end.
func supervisedRole(role string) int {
	sup, err := SupervisorFromEnv()
	if err != nil || sup == nil {
		fmt.Println("supervisor:", sup, err)
		return 3
	}
	if role == "late-successor" || role == "quick-successor" {
		if role == "late-successor" {
			time.Sleep(300 * time.Millisecond)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		if err := sup.Announce(); err != nil {
			fmt.Println("announce:", err)
			return 3
		}
		return 7
	}
	if err := sup.Announce(); err != nil {
		fmt.Println("announce:", err)
		return 3
	}
	if role == "watching-worker" {
		gone, stop := sup.Watch()
		defer stop()
		fmt.Println("watching", os.Getppid())
		select {
		case <-gone:
			fmt.Println("gone")
		case <-time.After(20 * time.Second):
			fmt.Println("still watching")
		}
		return 0
	}
	var proc *os.Process
	if role == "orphaning-worker" {
		proc, err = os.StartProcess("/bin/sh", []string{"sh", "-c", "exec sleep 60"}, &os.ProcAttr{})
	} else {
		if role == "dying-worker-quick" {
			os.Setenv(roleVar, "quick-successor")
		} else {
			os.Setenv(roleVar, "late-successor")
		}
		proc, err = os.StartProcess(os.Args[0], os.Args, &os.ProcAttr{
			Env:   append(os.Environ(), SupervisorVar+"=3"),
			Files: append([]*os.File{os.Stdin, os.Stdout, os.Stderr}, sup.Files()...),
		})
	}
	if err != nil {
		fmt.Println("start:", err)
		return 3
	}
	fmt.Println("child", proc.Pid)
	return 0
}

// superviseAs runs the test binary as a supervisor whose worker plays
// role, with env added to its environment, and returns its exit status,
// what it printed, and how long it took.
func superviseAs(t *testing.T, role string, env ...string) (int, []string, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleVar+"=supervisor", workerRoleVar+"="+role), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	cmd.Wait()
	return cmd.ProcessState.ExitCode(), lines, time.Since(start)
}

// TestSupervisorEndsOrphans: a worker that exits leaving a child behind
// (a successor it was starting) ends the host; the supervisor must not
// exit before that child is gone, or the child outlives the host, holding
// its socket path and its log. Here the child would run for a minute, and
// the supervisor's stdout, which the child holds too, would stay open.
func TestSupervisorEndsOrphans(t *testing.T) {
	status, lines, took := superviseAs(t, "orphaning-worker")
	if status != 0 {
		t.Fatalf("supervisor exited %d, want the worker's 0: %q", status, lines)
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "child ") {
		t.Fatalf("worker said %q", lines)
	}
	pid, _ := strconv.Atoi(strings.TrimPrefix(lines[0], "child "))
	if pid <= 0 {
		t.Fatalf("worker said %q", lines)
	}
	if alive(pid) {
		t.Errorf("the worker's child %d still runs after the supervisor exited", pid)
	}
	if took > 30*time.Second {
		t.Errorf("the supervisor took %v to end", took)
	}
}

// TestSupervisorFollowsLateSuccessor: a worker that dies after its
// successor took the handover but before the successor announced itself
// leaves the host to the successor; the supervisor goes on with it and
// exits with its status (7), not the dead worker's (0).
func TestSupervisorFollowsLateSuccessor(t *testing.T) {
	status, lines, _ := superviseAs(t, "dying-worker")
	if status != 7 {
		t.Fatalf("supervisor exited %d, want the late successor's 7: %q", status, lines)
	}
}

// TestSupervisorFollowsQuickSuccessor: a successor that took over from a
// dead worker and exits right after it announced itself ends the host with
// its status (7), also when its end comes before the supervisor looked at
// its announcement (the supervisor once took that end for an orphan's and
// exited with the dead worker's 0).
func TestSupervisorFollowsQuickSuccessor(t *testing.T) {
	for range 5 {
		if status, lines, _ := superviseAs(t, "dying-worker-quick"); status != 7 {
			t.Fatalf("supervisor exited %d, want the successor's 7: %q", status, lines)
		}
	}
}

// TestSupervisorSuccessorEndsBetweenLooks: the quick successor announces
// itself, ends and is reaped while the supervisor, its worker dead, is
// between its look at the children and its look at the announcements
// (held there until no child is left). The supervisor must still take the
// announcement and exit with the successor's 7. When it read the
// announcements first, it found no child left and exited with the dead
// worker's 0: every run of this test, and about 1 in 12 runs of
// TestSupervisorFollowsQuickSuccessor on a loaded 2-core machine.
func TestSupervisorSuccessorEndsBetweenLooks(t *testing.T) {
	if status, lines, _ := superviseAs(t, "dying-worker-quick", holdLookVar+"=1"); status != 7 {
		t.Fatalf("supervisor exited %d, want the successor's 7: %q", status, lines)
	}
}

// alive says whether pid runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestWatchSeesSupervisorKilled: a supervisor killed outright (SIGKILL:
// it can pass nothing on) leaves its worker running, orphaned; Watch must
// tell the worker at once, so that it stops instead of serving on with
// nobody to signal it.
func TestWatchSeesSupervisorKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleVar+"=supervisor", workerRoleVar+"=watching-worker")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "watching ") {
		cmd.Process.Kill()
		t.Fatalf("worker said %q", sc.Text())
	}
	if ppid := strings.TrimPrefix(sc.Text(), "watching "); ppid != strconv.Itoa(cmd.Process.Pid) {
		cmd.Process.Kill()
		t.Fatalf("the worker's parent is %s, not the supervisor %d", ppid, cmd.Process.Pid)
	}
	cmd.Process.Kill()
	// The worker holds the pipe too: the next line is its.
	if !sc.Scan() || sc.Text() != "gone" {
		t.Fatalf("after the supervisor was killed the worker said %q, want gone", sc.Text())
	}
}
