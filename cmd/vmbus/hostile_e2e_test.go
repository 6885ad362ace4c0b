package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/hostchaos"
)

// guestRun is one run of a guest command against a host: how it exited,
// what it printed on stderr, how long it took.
type guestRun struct {
	args []string
	code int
	err  string
	took time.Duration
}

// runGuestCmd runs `vmbus guest --socket socket args...`, killed (and its
// goroutines dumped, SIGQUIT) after bound. An ic command runs until
// SIGTERM, sent after icRun.
func runGuestCmd(t *testing.T, socket string, bound time.Duration, args ...string) guestRun {
	t.Helper()
	const icRun = 2 * time.Second
	cmd := exec.Command(vmbusBinary(t), append([]string{"guest", "--socket", socket}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	exited := false
	if args[0] == "ic" {
		select {
		case err = <-done:
			exited = true
		case <-time.After(icRun):
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	if !exited {
		select {
		case err = <-done:
		case <-time.After(bound):
			cmd.Process.Signal(syscall.SIGQUIT)
			err = <-done
			t.Errorf("%v: still running after %v:\n%s", args, bound, stderr.String())
		}
	}
	return guestRun{args: args, code: exitCode(err), err: stderr.String(), took: time.Since(start)}
}

// TestE2EHostileHost runs a hostile host (a fixed seed, a few seconds)
// with echo, blk and the integration components while guest commands
// (stream, disk verify, ic) use it over and over: each ends within its
// bound, with exit status 0 or 1 (a clean failure, its cause on stderr),
// never a panic; the host reports what it tried; and afterwards the same
// commands against a good host succeed.
func TestE2EHostileHost(t *testing.T) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	socket, disk := filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	devices := []string{"--device", "echo", "--device", "blk=" + disk, "--device", "ic"}
	const chaosFor = 5 * time.Second
	host := exec.Command(bin, append([]string{"host", "--socket", socket, "--chaos", "--seed", "20",
		"--chaos-duration", chaosFor.String(), "--json"}, devices...)...)
	var report, logs bytes.Buffer
	host.Stdout, host.Stderr = &report, &logs
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	hostDone := make(chan error, 1)
	go func() { hostDone <- host.Wait() }()
	defer func() {
		host.Process.Kill()
		<-hostDone
	}()
	waitSocket(t, socket, &logs)

	ctx, stopGuests := context.WithCancel(context.Background())
	var mu sync.Mutex
	var runs []guestRun
	var wg sync.WaitGroup
	for _, args := range [][]string{
		{"stream", "--payload", "64", "--count", "5000", "--idle", "1s"},
		{"disk", "verify", "--size", "1048576"},
		{"ic"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				r := runGuestCmd(t, socket, 25*time.Second, args...)
				mu.Lock()
				runs = append(runs, r)
				mu.Unlock()
			}
		}()
	}
	select {
	case err := <-hostDone:
		hostDone <- err
	case <-time.After(chaosFor + 15*time.Second):
		t.Errorf("the hostile host did not end after %v:\n%s", chaosFor, logs.String())
	}
	stopGuests()
	wg.Wait()
	if err := <-hostDone; err != nil {
		t.Errorf("hostile host: %v\n%s", err, logs.String())
	}
	hostDone <- nil

	failed := 0
	for _, r := range runs {
		if strings.Contains(r.err, "panic:") || strings.Contains(r.err, "goroutine ") {
			t.Errorf("%v: exit %d after %v, a panic or goroutine dump:\n%s", r.args, r.code, r.took, r.err)
			continue
		}
		switch r.code {
		case 0:
		case 1:
			failed++
			if !strings.HasPrefix(r.err, "vmbus: ") {
				t.Errorf("%v: exit 1 with no error message: %q", r.args, r.err)
			}
		default:
			t.Errorf("%v: exit %d after %v, want 0 or 1:\n%s", r.args, r.code, r.took, r.err)
		}
	}
	var rep hostchaos.Report
	if err := json.Unmarshal(report.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v: %q", err, report.String())
	}
	tried := 0
	for _, a := range rep.Actions {
		tried += a.Tried
	}
	t.Logf("%d guest runs, %d failed cleanly; the host served %d sessions and tried %d misbehaviours of %d kinds",
		len(runs), failed, rep.Sessions, tried, len(rep.Actions))
	if rep.Sessions == 0 || tried == 0 || failed == 0 {
		t.Errorf("%d sessions, %d misbehaviours, %d guest failures: the host was not hostile", rep.Sessions, tried, failed)
	}

	// The same commands against a good host.
	good := exec.Command(bin, append([]string{"host", "--socket", socket}, devices...)...)
	var goodLogs bytes.Buffer
	good.Stderr = &goodLogs
	if err := good.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		good.Process.Signal(syscall.SIGTERM)
		good.Wait()
	}()
	waitSocket(t, socket, &goodLogs)
	for _, args := range [][]string{
		{"stream", "--payload", "64", "--count", "5000"},
		{"disk", "verify", "--size", "1048576"},
		{"ic"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := runGuestCmd(t, socket, 20*time.Second, args...); r.code != 0 {
				t.Errorf("after the hostile host, against a good one: %v: exit %d:\n%s", args, r.code, r.err)
			}
		}()
	}
	wg.Wait()
}

// waitSocket waits for a host to listen on socket.
func waitSocket(t *testing.T, socket string, logs *bytes.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host did not listen: %s", logs.String())
		}
	}
}

// TestHostChaosUsage: the hostile host's flags without --chaos, or a
// negative duration, are bad usage (exit 2) before anything listens.
func TestHostChaosUsage(t *testing.T) {
	bin := vmbusBinary(t)
	sock := filepath.Join(t.TempDir(), "bus.sock")
	for _, args := range [][]string{
		{"host", "--chaos"},
		{"host", "--socket", sock, "--seed", "3"},
		{"host", "--socket", sock, "--chaos-duration", "5s"},
		{"host", "--socket", sock, "--chaos", "--chaos-duration", "-1s"},
		{"host", "--socket", sock, "--chaos", "--seed", "x"},
		{"host", "--socket", sock, "--json"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.WaitDelay = 5 * time.Second
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if exitCode(err) != 2 {
				t.Errorf("%v: %v, want exit 2", args, err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%v: still running after 20 s, want exit 2 at once", args)
		}
	}
}
