package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EStopDuringServicing sends SIGTERM while a servicing is under way
// and has not handed over yet: the host must give the servicing up and
// stop in order (exit 0, startJSONHost's cleanup checks it), with exec and
// with spawn servicing. The binary is replaced by an upgrade that takes
// ten seconds to start, so the signal lands in the servicing's pre-flight
// (exec: the probe of the new binary; spawn: the successor's start),
// which the stop cuts short.
// Before, the old image caught the signal, went on with the servicing and
// handed over, and the successor served on: the stop was lost.
func TestE2EStopDuringServicing(t *testing.T) {
	for _, mode := range []string{"exec", "spawn"} {
		t.Run(mode, func(t *testing.T) {
			h, exe, real := upgradableHost(t, "--device", "echo", "--servicing", mode)
			upgrade(t, exe, "sleep 10 >/dev/null 2>&1\nexec "+real+" \"$@\"")
			pid := h.cmd.Process.Pid
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // within the upgrade's start
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// Within 8 s, short of the upgrade's 10 s start. With spawn
			// the supervisor ends the aborted script's sleep, its orphan,
			// after its 2 s grace (servicing.orphanGrace).
			termed := time.Now()
			for end := termed.Add(8 * time.Second); running(pid); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("the host serves on 8 s after a SIGTERM sent during its servicing\n%s", h.logs())
				}
			}
			t.Logf("stopped %v after the SIGTERM", time.Since(termed).Round(time.Millisecond))
			logs := h.logs()
			if strings.Contains(logs, "servicing complete") {
				t.Errorf("the servicing completed after the SIGTERM\n%s", logs)
			}
			if !strings.Contains(logs, `"stage":"stop"`) {
				t.Errorf("no servicing given up for the stop in the log\n%s", logs)
			}
		})
	}
}

// upgradableHost runs a host from a copy of the binary at exe, beside a
// second copy at real, so that a test can replace exe with an upgrade
// (upgrade) that runs real.
func upgradableHost(t *testing.T, args ...string) (h *servicedHost, exe, real string) {
	t.Helper()
	dir := t.TempDir()
	exe, real = filepath.Join(dir, "vmbus"), filepath.Join(dir, "vmbus.real")
	b, err := os.ReadFile(vmbusBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{exe, real} {
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return startJSONHost(t, exe, filepath.Join(dir, "bus.sock"), args...), exe, real
}

// upgrade installs a shell script of body as the binary at exe: a new
// file at the path, as a package manager installs one (the running binary
// stays as it is).
func upgrade(t *testing.T, exe, body string) {
	t.Helper()
	next := exe + ".new"
	if err := os.WriteFile(next, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, exe); err != nil {
		t.Fatal(err)
	}
}
