package hosting

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmbus/govmbus/servicing"
)

// carryRoleVar makes the test binary a program that embeds a Daemon and
// carries a file of its own across a servicing (carryRole), by exec
// unless carryModeVar says spawn.
const (
	carryRoleVar = "HOSTING_TEST_CARRY_SOCKET"
	carryModeVar = "HOSTING_TEST_CARRY_MODE"
)

// carryRole is the test binary as such a program: it serves (no devices),
// says "ready", and at SIGHUP services by exec into itself, carrying a
// memfd that holds its "VM state". The new image adopts, prints what
// came in the carried file, and exits.
func carryRole(socket string) int {
	hup := CatchHangup()
	cfg := Config{Socket: socket, Kinds: NewRegistry(), Hangup: hup}
	if os.Getenv(carryModeVar) == "spawn" {
		cfg.Servicing = Spawn
	}
	h, inherited, err := servicing.Inherited()
	if err != nil {
		fmt.Println("inherited:", err)
		return 1
	}
	pred, spawned, err := servicing.Spawned()
	if err != nil {
		fmt.Println("spawned:", err)
		return 1
	}
	if !inherited && !spawned {
		fd, err := unix.MemfdCreate("vm-state", unix.MFD_CLOEXEC)
		if err != nil {
			fmt.Println("memfd:", err)
			return 1
		}
		state := os.NewFile(uintptr(fd), "vm-state")
		if _, err := state.WriteString("vcpus 4"); err != nil {
			fmt.Println("memfd:", err)
			return 1
		}
		cfg.Carry = func() (map[string]*os.File, error) { return map[string]*os.File{"vm-state": state}, nil }
	}
	d, err := New(cfg)
	if err != nil {
		fmt.Println("new:", err)
		return 1
	}
	defer d.Close()
	if inherited || spawned {
		if inherited {
			err = d.Adopt(h)
		} else {
			_, err = d.AdoptSpawned(pred)
		}
		if err != nil {
			fmt.Println("adopt:", err)
			return 1
		}
		f := d.Carried()["vm-state"]
		if f == nil {
			fmt.Println("carried: nothing")
			return 1
		}
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		fmt.Printf("carried: %q %v\n", b, err)
		return 0
	}
	if err := d.Serve(); err != nil {
		fmt.Println("serve:", err)
		return 1
	}
	fmt.Println("ready")
	<-hup
	err = d.ServiceContext(context.Background())
	fmt.Println("servicing returned:", err)
	return 1
}

// TestCarryAcrossServicing: a file that Config.Carry gives crosses an exec
// or spawn servicing into the successor's Carried, with what it holds.
func TestCarryAcrossServicing(t *testing.T) {
	for _, mode := range []string{"exec", "spawn"} {
		t.Run(mode, func(t *testing.T) { testCarry(t, mode) })
	}
}

func testCarry(t *testing.T, mode string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), carryRoleVar+"="+filepath.Join(t.TempDir(), "bus.sock"), carryModeVar+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the program ended without a word")
			}
			return l
		case <-timeout:
			t.Fatal("no word from the program within 30 s")
		}
		return ""
	}
	if l := next(); l != "ready" {
		t.Fatalf("program: %q", l)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if l := next(); !strings.HasPrefix(l, `carried: "vcpus 4" <nil>`) {
		t.Fatalf("the successor: %q", l)
	}
	// The exec's new image exits 0 after it printed; a spawned
	// successor's predecessor exits 0 once the successor has the
	// handover.
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
