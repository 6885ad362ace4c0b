package servicing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
			Files:  map[string]*os.File{"pipe": r},
			State:  []byte("saved state bytes"),
			Paused: time.Unix(0, 12345),
		})
		fmt.Println("exec failed:", err)
		os.Exit(3)
	case "successor":
		h, ok, err := Inherited()
		if err != nil || !ok {
			fmt.Println("inherit:", ok, err)
			os.Exit(4)
		}
		buf := make([]byte, 64)
		n, _ := h.Files["pipe"].Read(buf)
		flags, _ := unix.FcntlInt(h.Files["pipe"].Fd(), unix.F_GETFD, 0)
		fmt.Printf("state=%q pipe=%q paused=%d cloexec=%v env=%q\n", h.State, buf[:n], h.Paused.UnixNano(),
			flags&unix.FD_CLOEXEC != 0, os.Getenv(EnvVar))
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
	err := Exec("/nonexistent/binary", []string{"x"}, Handover{Files: map[string]*os.File{"p": r}, State: []byte("s")})
	if err == nil {
		t.Fatal("exec of a missing binary succeeded")
	}
	fd, _ := rawFD(r)
	flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("close-on-exec not restored after a failed exec")
	}
	w.Write([]byte("still works"))
	buf := make([]byte, 16)
	if n, _ := r.Read(buf); !bytes.Equal(buf[:n], []byte("still works")) {
		t.Fatal("pipe unusable after failed exec")
	}
	if err := Exec("/bin/true", nil, Handover{Files: map[string]*os.File{"a=b": r}}); err == nil {
		t.Fatal("bad name accepted")
	}
}
