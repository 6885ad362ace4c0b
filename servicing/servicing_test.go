package servicing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const roleVar = "GOVMBUS_SERVICING_TEST_ROLE"

// TestMain lets the test binary play the two images of a servicing: the
// predecessor execs itself with a handover, the successor adopts it and
// reports what it found on stdout.
func TestMain(m *testing.M) {
	switch os.Getenv(roleVar) {
	case "predecessor":
		os.Setenv(roleVar, "successor")
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Println("pipe:", err)
			os.Exit(3)
		}
		w.Write([]byte("through the pipe"))
		w.Close()
		err = Exec(os.Args[0], os.Args, Handover{
			FDs:    map[string]int{"pipe": int(r.Fd())},
			State:  []byte("saved state bytes"),
			Paused: time.Unix(0, 12345),
		})
		fmt.Println("exec failed:", err)
		os.Exit(3)
	case "spawned":
		os.Exit(spawnedRole())
	case "supervisor":
		os.Setenv(roleVar, os.Getenv(workerRoleVar))
		if os.Getenv(holdLookVar) != "" {
			testHookOrphanLook = waitNoChildren
		}
		status, err := Supervise(os.Args)
		if err != nil {
			fmt.Println("supervise:", err)
			os.Exit(3)
		}
		os.Exit(status)
	case "orphaning-worker", "dying-worker", "late-successor", "dying-worker-quick", "quick-successor", "watching-worker":
		os.Exit(supervisedRole(os.Getenv(roleVar)))
	case "successor":
		keeperPID, _ := strconv.Atoi(os.Getenv(keeperVar))
		h, ok, err := Inherited()
		if err != nil || !ok {
			fmt.Println("inherit:", ok, err)
			os.Exit(4)
		}
		buf := make([]byte, 64)
		pipe := os.NewFile(uintptr(h.FDs["pipe"]), "pipe")
		n, _ := pipe.Read(buf)
		flags, _ := unix.FcntlInt(pipe.Fd(), unix.F_GETFD, 0)
		fmt.Printf("state=%q pipe=%q paused=%d cloexec=%v env=%q\n", h.State, buf[:n], h.Paused.UnixNano(),
			flags&unix.FD_CLOEXEC != 0, os.Getenv(EnvVar))
		fmt.Println(keeperOutcome(keeperPID))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestExecHandsOverFilesAndState(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleVar+"=predecessor")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := `state="saved state bytes" pipe="through the pipe" paused=12345 cloexec=true env=""`
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		want += "\nkeeper reaped"
	} else {
		want += "\nno keeper"
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("successor printed\n%s\nwant\n%s", got, want)
	}
}

func TestInheritedWithoutHandover(t *testing.T) {
	os.Unsetenv(EnvVar)
	if _, ok, err := Inherited(); ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
}

func TestInheritedRejectsMalformed(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	good, _ := stateMemfd([]byte("x"))
	defer unix.Close(good)
	for _, spec := range []string{
		"", "v2;state=3;paused=0", "v1", "v1;state=abc;paused=0", "v1;state=1;paused=0",
		fmt.Sprintf("v1;paused=0;pipe=%d", r.Fd()),
		fmt.Sprintf("v1;state=%d;paused=x", good),
		fmt.Sprintf("v1;state=%d;paused=0;a=%d;a=%d", good, r.Fd(), r.Fd()),
		fmt.Sprintf("v1;state=%d;paused=0;=5", good),
		fmt.Sprintf("v1;state=%d;paused=0;state=%d", good, r.Fd()),
		fmt.Sprintf("v1;state=%d;paused=0;a=%d", good, 1<<31),
		fmt.Sprintf("v1;state=%d;paused=0;a=-4", good),
		fmt.Sprintf("v1;state=%d;paused=0;a", good),
		"v1;state=999999;paused=0",
	} {
		os.Setenv(EnvVar, spec)
		_, ok, err := Inherited()
		if !ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: ok=%v err=%v", spec, ok, err)
		}
		if _, set := os.LookupEnv(EnvVar); set {
			t.Errorf("%q: variable left in the environment", spec)
		}
	}
}

func TestExecFailureLeavesDescriptors(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	err := Exec("/nonexistent/binary", []string{"x"}, Handover{FDs: map[string]int{"p": int(r.Fd())}, State: []byte("s")})
	if err == nil {
		t.Fatal("exec of a missing binary succeeded")
	}
	flags, _ := unix.FcntlInt(r.Fd(), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("close-on-exec not restored after a failed exec")
	}
	w.Write([]byte("still works"))
	buf := make([]byte, 16)
	if n, _ := r.Read(buf); !bytes.Equal(buf[:n], []byte("still works")) {
		t.Fatal("pipe unusable after failed exec")
	}
	for _, name := range []string{"a=b", "", "x;y", "state", "paused"} {
		if err := Exec("/bin/true", nil, Handover{FDs: map[string]int{name: int(r.Fd())}}); err == nil {
			t.Fatalf("bad name %q accepted", name)
		}
	}
	if err := Exec("/bin/true", nil, Handover{FDs: map[string]int{"p": -1}}); err == nil {
		t.Fatal("negative descriptor accepted")
	}
	// A descriptor that is not open fails the exec before it happens,
	// and leaves the others as they were.
	if err := Exec("/bin/true", nil, Handover{FDs: map[string]int{"a": int(r.Fd()), "b": 1 << 29}}); err == nil {
		t.Fatal("a descriptor that is not open accepted")
	}
	if flags, _ := unix.FcntlInt(r.Fd(), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("close-on-exec not restored after a refused descriptor")
	}
	// The keeper of the failed exec is gone and reaped: no child is left.
	if kids := children(t); kids != "" {
		t.Fatalf("children left after a failed exec: %s", kids)
	}
}

// keeperOutcome is what became of the predecessor's keeper pid, as a
// successor sees it: it must have been this process's child, and must be
// reaped without the successor doing anything more than Inherited.
func keeperOutcome(pid int) string {
	if pid == 0 {
		return "no keeper"
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return "keeper reaped"
		}
		// Field 4 is the parent: the keeper is this process's child.
		if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 1 && f[1] != strconv.Itoa(os.Getpid()) {
			return "keeper is not our child: parent " + f[1]
		}
		time.Sleep(time.Millisecond)
	}
	return "keeper not reaped"
}

// children lists this process's child processes.
func children(t *testing.T) string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip("no /proc")
	}
	var all []string
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			all = append(all, string(bytes.TrimSpace(b)))
		}
	}
	return strings.Join(all, " ")
}

// TestExecStopped: a Handover.Stop closed before the exec makes Exec give
// up at its last moment (ErrStopped), with every descriptor as it was; a
// stop caught by this image later than its caller's last look was lost
// with it. (The binary does not exist: an exec tried fails otherwise.)
func TestExecStopped(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	stop := make(chan struct{})
	close(stop)
	err := Exec("/nonexistent/binary", []string{"x"}, Handover{FDs: map[string]int{"p": int(r.Fd())}, State: []byte("s"), Stop: stop})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("Exec with a stop asked for: %v, want ErrStopped", err)
	}
	flags, _ := unix.FcntlInt(r.Fd(), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("close-on-exec not restored after a stopped exec")
	}
}
