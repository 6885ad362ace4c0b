package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EHostSocketPaths: `vmbus host` binds --socket and --admin only
// where nothing of anyone else's is. Before, --admin replaced whatever was
// at its path (a regular file was gone after the host stopped; a running
// host's admin socket was taken over and then removed), and a socket left
// by a host killed outright kept the next one from starting ("address
// already in use").
func TestE2EHostSocketPaths(t *testing.T) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	run := func(args ...string) (int, string) {
		t.Helper()
		// A host that starts where it should not is ended, and fails.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"host", "--device", "echo"}, args...)...)
		out, err := cmd.CombinedOutput()
		return exitCode(err), string(out)
	}

	precious := filepath.Join(dir, "precious")
	if err := os.WriteFile(precious, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--socket", filepath.Join(dir, "a.sock"), "--admin", precious},
		{"--socket", precious},
		{"--socket", dir},
	} {
		if code, out := run(args...); code != 2 || !strings.Contains(out, "is not a socket") {
			t.Errorf("host %v: exit %d, %q; want 2, not a socket", args, code, out)
		}
	}
	if b, err := os.ReadFile(precious); string(b) != "keep me" {
		t.Fatalf("the regular file at --admin: %q, %v", b, err)
	}
	// The clients say so too, where a connect said "connection refused"
	// (exit 1).
	for _, args := range [][]string{
		{"guest", "--socket", precious, "list"},
		{"guest", "--socket", dir, "ping"},
		{"admin", "--socket", precious, "guests"},
		{"top", "--admin", precious, "--count", "1"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if exitCode(err) != 2 || !strings.Contains(string(out), "is not a socket") {
			t.Errorf("%v: %v, %q; want exit 2, not a socket", args, err, out)
		}
	}

	// A host killed outright leaves both sockets: the next one starts.
	socket, adm := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "admin.sock")
	first := exec.Command(bin, "host", "--device", "echo", "--socket", socket, "--admin", adm)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first host's admin socket", func() bool { _, err := os.Stat(adm); return err == nil })
	first.Process.Kill()
	first.Wait()
	h := startJSONHost(t, bin, socket, "--device", "echo", "--admin", adm)

	// Another host on the live sockets is refused, and leaves them be.
	if code, out := run("--socket", filepath.Join(dir, "other.sock"), "--admin", adm); code != 1 || !strings.Contains(out, "a process listens on it") {
		t.Errorf("a second host on a live --admin: exit %d, %q; want 1, in use", code, out)
	}
	if code, out := run("--socket", socket); code != 1 || !strings.Contains(out, "a process listens on it") {
		t.Errorf("a second host on a live --socket: exit %d, %q; want 1, in use", code, out)
	}
	if code, out := run("--socket", filepath.Join(dir, "third.sock"), "--admin", socket); code != 1 || !strings.Contains(out, "a process listens on it") {
		t.Errorf("--admin on a live bus socket: exit %d, %q; want 1, in use", code, out)
	}
	if out, err := exec.Command(bin, "admin", "--socket", adm, "guests").CombinedOutput(); err != nil {
		t.Fatalf("the running host's admin after the refusals: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "guest", "--socket", socket, "ping", "--count", "3").CombinedOutput(); err != nil {
		t.Fatalf("the running host after the refusals: %v: %s", err, out)
	}
	// And a servicing's successor still takes its predecessor's.
	h.service(t, 1)
	if out, err := exec.Command(bin, "admin", "--socket", adm, "guests").CombinedOutput(); err != nil {
		t.Fatalf("admin after a servicing: %v: %s", err, out)
	}
}
