package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestE2ESpawnedSuccessorOtherDevices: a spawned successor made with other
// devices than its predecessor (an upgrade that adds one) refuses the
// handover while the predecessor can still restore it: the servicing
// fails, the old process restores its guests and serves on. Before, the
// successor said it had the handover, the predecessor exited, and the
// successor then failed on the devices: every guest was lost.
func TestE2ESpawnedSuccessorOtherDevices(t *testing.T) {
	dir := t.TempDir()
	exe, real := filepath.Join(dir, "vmbus"), filepath.Join(dir, "vmbus.real")
	b, err := os.ReadFile(vmbusBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{exe, real} {
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := startJSONHost(t, exe, filepath.Join(dir, "bus.sock"), "--device", "echo", "--servicing", "spawn")
	ping := func(when string) {
		t.Helper()
		if out, err := exec.Command(real, "guest", "--socket", h.socket, "ping", "--count", "5").CombinedOutput(); err != nil {
			t.Fatalf("ping %s: %v: %s\n%s", when, err, out, h.logs())
		}
	}
	ping("before")
	// The upgrade: one more echo device.
	next := exe + ".new"
	if err := os.WriteFile(next, []byte("#!/bin/sh\nexec "+real+" \"$@\" --device echo\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, exe); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := h.waitMsgs(t, "servicing complete", "servicing failed; restoring in this process")
	if l["msg"] != "servicing failed; restoring in this process" || !strings.Contains(h.logs(), "inherited state has devices") {
		t.Fatalf("want the servicing refused by the successor for its devices:\n%s", h.logs())
	}
	h.waitMsg(t, "servicing complete") // the restore in the old process
	ping("after")
}
