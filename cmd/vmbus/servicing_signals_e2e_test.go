package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// running says whether process pid exists and has not exited (a child
// not yet waited for is a zombie, which kill(pid, 0) still finds).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestE2EServicingSignalStorm sends SIGHUP every millisecond for 300 ms, so
// that many arrive while a servicing runs and some while the new image
// starts, before it asks for SIGHUP again (where Go's default action would
// kill it). The host must survive them all, each servicing must complete,
// and afterwards it must serve a guest, take one more SIGHUP as one more
// servicing, and stop cleanly on SIGTERM (startJSONHost's cleanup).
func TestE2EServicingSignalStorm(t *testing.T) {
	bin := vmbusBinary(t)
	h := startServicedHost(t, bin, 1<<20)
	pid := h.cmd.Process.Pid
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatalf("host gone during the storm: %v\n%s", err, h.logs())
		}
		time.Sleep(time.Millisecond)
	}
	// Servicings complete one after the other; the storm is over when
	// none has completed for a second.
	last := 0.0
	for quiet := time.After(time.Second); ; {
		select {
		case l := <-h.lines:
			if l["msg"] == "servicing complete" {
				last = l["servicing"].(float64)
				quiet = time.After(time.Second)
			}
			if l["level"] == "ERROR" {
				t.Errorf("host: %v", l)
			}
			continue
		case <-quiet:
		}
		break
	}
	if !running(pid) {
		t.Fatalf("host died in the storm after %v servicings\n%s", last, h.logs())
	}
	if last < 1 {
		t.Fatalf("no servicing completed in the storm\n%s", h.logs())
	}
	t.Logf("%v servicings in the storm", last)
	out, err := exec.Command(bin, "guest", "--socket", h.socket, "ping", "--count", "10").CombinedOutput()
	if err != nil {
		t.Fatalf("ping after the storm: %v: %s", err, out)
	}
	h.service(t, int(last)+1)
}
