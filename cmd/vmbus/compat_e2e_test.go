package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// compatRelease is the earlier release the compatibility test services
// from and rolls back to: the last one before kind 0x0005 (channel-restart,
// 084e832) that the issue of rollbacks losing a disk was found with, and
// the oldest end of the promise in docs/SAVED_STATE.md.
const compatRelease = "3d79281"

var (
	oldBuildMu sync.Mutex
	oldBuilds  = map[string]string{}
)

// oldBinary builds `vmbus` at commit of this repository's own history,
// static (CGO_ENABLED=0) as a servicing host is deployed, and returns its
// path. The binary is kept in the user's cache directory by commit, so
// that later runs only copy it. It skips the test only if this is not a
// git checkout; a commit missing from one fails it (CI has the history).
func oldBinary(t *testing.T, commit string) string {
	t.Helper()
	oldBuildMu.Lock()
	defer oldBuildMu.Unlock()
	if p, ok := oldBuilds[commit]; ok {
		return p
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (git rev-parse: %v): the earlier releases to build come from its history", err)
	}
	repo := strings.TrimSpace(string(top))
	full, err := exec.Command("git", "-C", repo, "rev-parse", "--verify", commit+"^{commit}").Output()
	if err != nil {
		t.Fatalf("commit %s is not in this clone (a shallow clone? fetch the history): %v", commit, err)
	}
	hash := strings.TrimSpace(string(full))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "govmbus-compat")
	bin := filepath.Join(dir, "vmbus-"+hash)
	if _, err := os.Stat(bin); err == nil {
		oldBuilds[commit] = bin
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, hash, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	tmp := bin + fmt.Sprintf(".%d.tmp", os.Getpid())
	build := exec.Command("go", "build", "-trimpath", "-o", tmp, "./cmd/vmbus")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", commit, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %.1f s", commit, time.Since(start).Seconds())
	oldBuilds[commit] = bin
	return bin
}

// install puts a copy of src at path at once (rename), as an operator
// replaces a host's binary before a SIGHUP.
func install(t *testing.T, src, path string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestE2EServicingAcrossReleases services a host from an earlier release
// (compatRelease) to this build and back, four times each way, while a
// guest streams through echo and writes, flushes and verifies disk rounds
// (demo-load: each round ends in a FLUSH, so a rollback meets one in
// flight now and then). The binary at the host's exec path is replaced
// before each SIGHUP, as an operator would. Nothing may be lost, no
// device offered anew, no error logged by either release; each rollback
// says that its pause waited for restartable packets, the earlier release
// not reading channel-restart records.
func TestE2EServicingAcrossReleases(t *testing.T) {
	servicesAcross(t, compatRelease, true, "exec")
}

// refactorBase is main just before the host daemon moved out of package
// main into hosting: the build the library's first release must service
// from and roll back to, its host-state format byte for byte.
const refactorBase = "856f736"

// TestE2EServicingAcrossRefactor services a host built at refactorBase to
// this build and back, four times each way, under the same stream and
// disk load as TestE2EServicingAcrossReleases: nothing may be lost, no
// device offered anew, no error logged by either build. Both read every
// kind the other writes, so no pause waits for restartable packets.
func TestE2EServicingAcrossRefactor(t *testing.T) {
	servicesAcross(t, refactorBase, false, "exec")
}

// TestE2EServicingAcrossRefactorSpawn is TestE2EServicingAcrossRefactor
// with --servicing spawn (compatRelease predates spawned servicing): the
// supervisor is the older build for the whole run, each successor is
// started beside its predecessor, and each, of either build, answers the
// pre-flight with the kinds it reads in its ready message.
func TestE2EServicingAcrossRefactorSpawn(t *testing.T) {
	servicesAcross(t, refactorBase, false, "spawn")
}

// servicesAcross is the test of servicing between the build at commit and
// this one (see TestE2EServicingAcrossReleases); rollbacksWait says
// whether each servicing into the older build waits for restartable
// packets (it does not read channel-restart records); mode is the
// host's --servicing.
func servicesAcross(t *testing.T, commit string, rollbacksWait bool, mode string) {
	old := oldBinary(t, commit)
	cur := vmbusBinary(t)
	bin := filepath.Join(t.TempDir(), "vmbus")
	install(t, old, bin)
	var args []string
	if mode != "exec" {
		args = []string{"--servicing", mode} // compatRelease knows no --servicing
	}
	h := startServicedHost(t, bin, 16<<20, args...)
	start := time.Now()

	const servicings = 8
	// Long enough for every servicing; the test waits for the result.
	load := exec.Command(cur, "guest", "--socket", h.socket, "demo-load", "--duration", "14s",
		"--interval", "100ms", "--disk-chunk", "2097152")
	p := followLoad(t, load)
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		load.Process.Kill()
		<-p.done
		load.Wait() //nolint:errcheck // killed, or done already
	})
	deadline := time.Now().Add(10 * time.Second)
	for l := p.last(); l.Packets == 0 || l.Rounds == 0; l = p.last() {
		if time.Now().After(deadline) {
			t.Fatalf("no traffic: %+v\n%s", l, h.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 1; i <= servicings; i++ {
		next := cur // old → current, then current → old, and so on
		if i%2 == 0 {
			next = old
		}
		install(t, next, bin)
		h.service(t, i)
		time.Sleep(time.Second)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the load did not end")
	}
	if err := load.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
	r := p.result
	if r == nil {
		t.Fatalf("no result from the load\n%s", h.logs())
	}
	logs := h.logs()
	t.Logf("%d servicings between %s and this build in %.1f s: %d packets, %d disk rounds, %d disk bytes verified",
		servicings, commit, time.Since(start).Seconds(), r.Packets, r.Rounds, r.DiskBytes)
	if len(r.Errors) > 0 || r.Lost+r.Duplicated+r.Corrupted+r.Stray != 0 || r.Mismatches != 0 || r.Packets == 0 || r.Rounds == 0 {
		t.Errorf("load result %+v", *r)
	}
	if strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, "offered anew") {
		t.Errorf("an error in the host's log:\n%s", logs)
	}
	want := 0
	if rollbacksWait {
		want = servicings / 2
	}
	if n := strings.Count(logs, `"msg":"servicing waits for restartable packets"`); n != want {
		t.Errorf("%d servicings waited for restartable packets, want %d:\n%s", n, want, logs)
	}
	if err := h.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("host gone: %v", err)
	}
}

// TestE2EServicingRefused: a successor binary that says it reads less
// than the state needs (no host-guest records) is refused before
// anything pauses: one log line, and the host serves on; with this build
// back at the path the next SIGHUP services it.
func TestE2EServicingRefused(t *testing.T) {
	bin := copyBinary(t)
	h := startServicedHost(t, bin, 1<<20)
	stop := make(chan struct{})
	streams := guestLoop(t, h.socket, stop, cleanTraffic, "stream", "--payload", "100", "--count", "100000")
	time.Sleep(100 * time.Millisecond)
	script := bin + ".script"
	answer := "format 1\\nkind 0x0001\\nkind 0x0002\\nkind 0x0003\\nkind 0x0004\\nkind 0x0005\\nkind 0x0100\\nkind 0x0101\\nkind 0x0102\\nkind 0x0200\\nkind 0x0202\\nkind 0x0203\\n"
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '"+answer+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, script, bin)
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := h.waitMsg(t, "servicing refused")
	if err, _ := l["err"].(string); !strings.Contains(err, "0x0201 host-guest") {
		t.Fatalf("refused for %q", err)
	}
	servedOn(t, h, stop, streams)
	logs := h.logs()
	if strings.Count(logs, `"level":"ERROR"`) != 1 || strings.Contains(logs, "servicing complete") || strings.Contains(logs, "servicing failed") {
		t.Fatalf("want the one refusal, no servicing:\n%s", logs)
	}
	install(t, vmbusBinary(t), bin)
	h.service(t, 1)
	if m := guestJSON(t, h.socket, "ping", "--count", "100"); !cleanTraffic(m) {
		t.Fatalf("ping after the servicing: %v", m)
	}
}
