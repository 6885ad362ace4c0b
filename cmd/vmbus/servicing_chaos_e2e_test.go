package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/chaos"
)

// TestE2EServicingChaos services the host again and again while the
// hostile guest (vmbus guest chaos) corrupts its rings, half-builds
// GPADLs and breaks its protocol beside a well-behaved guest that streams
// through echo and verifies the blk disk. Whatever state the hostile
// guest is saved in, no servicing may take the host or the well-behaved
// guest down: the successor restores every guest it can, and the
// well-behaved guest loses, duplicates and corrupts nothing, keeps its
// devices and goes on streaming after the last servicing. Both servicing
// modes; a few seconds of chaos each.
func TestE2EServicingChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 10 s")
	}
	for _, tc := range []struct {
		name string
		seed string
		args []string
	}{
		{"exec", "777", nil},
		{"spawn", "31337", []string{"--servicing", "spawn"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testServicingChaos(t, tc.seed, tc.args...) })
	}
}

func testServicingChaos(t *testing.T, seed string, args ...string) {
	bin := vmbusBinary(t)
	h := startServicedHost(t, bin, 4<<20, args...)
	load := exec.Command(bin, "guest", "--socket", h.socket, "demo-load", "--duration", "120s",
		"--interval", "50ms", "--pings", "10", "--chunk", "20000", "--disk-chunk", "65536")
	p := followLoad(t, load)
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		load.Process.Kill()
		<-p.done
		load.Wait() //nolint:errcheck // killed
	})
	// Bounded waits on the load's own progress: a loaded machine is
	// slow, never wrong.
	progressed := func(what string, from loadJSON) loadJSON {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			l := p.last()
			if l.Packets > from.Packets && l.Rounds > from.Rounds {
				return l
			}
			select {
			case <-p.done:
				t.Fatalf("the well-behaved guest stopped %s: %+v\nhost:\n%s", what, p.result, h.logs())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the well-behaved guest made no progress %s: %+v\nhost:\n%s", what, l, h.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	progressed("at the start", loadJSON{})

	const chaosTime = 3 * time.Second
	ch := exec.Command(bin, "guest", "--socket", h.socket, "chaos", "--seed", seed, "--duration", chaosTime.String(), "--json")
	var chaosOut strings.Builder
	ch.Stdout = &chaosOut
	if err := ch.Start(); err != nil {
		t.Fatal(err)
	}
	chaosDone := make(chan error, 1)
	go func() { chaosDone <- ch.Wait() }()
	t.Cleanup(func() {
		ch.Process.Kill()
		<-chaosDone
	})

	// Service the host until the chaos run ends: each SIGHUP is answered
	// by a servicing that completes, or that fails and leaves the host
	// serving on (the hostile guest may refuse to pause). Either way the
	// next one waits for the answer.
	completed, failed, rolledBack := 0, 0, 0
	for running := true; running; {
		h.skip(300 * time.Millisecond)
		select {
		case err := <-chaosDone:
			chaosDone <- err
			running = false
			continue
		default:
		}
		if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("host gone: %v\n%s", err, h.logs())
		}
		// A servicing rolled back (failed after the save, restored in
		// this process) is counted as the host counts it.
		switch l := h.waitMsgs(t, "servicing complete", "servicing rolled back", "servicing failed"); l["msg"] {
		case "servicing complete":
			completed++
			if l["servicing"] != float64(completed+rolledBack) {
				t.Fatalf("servicing %v, want %d", l["servicing"], completed+rolledBack)
			}
		case "servicing rolled back":
			rolledBack++
			failed++
			if l["servicing"] != float64(completed+rolledBack) {
				t.Fatalf("servicing %v rolled back, want %d", l["servicing"], completed+rolledBack)
			}
		default:
			failed++
		}
	}
	var rep chaos.Report
	if err := json.Unmarshal([]byte(chaosOut.String()), &rep); err != nil {
		t.Fatalf("chaos report %q: %v", chaosOut.String(), err)
	}
	tried := 0
	for _, a := range rep.Actions {
		tried += a.Tried
	}
	logs := h.logs()
	t.Logf("%d servicings completed, %d failed; chaos: %d sessions, %d actions in %.1f s; %d guests and %d channels not restored",
		completed, failed, rep.Sessions, tried, rep.Seconds,
		strings.Count(logs, `"guest not restored; disconnected"`), strings.Count(logs, `"device not restored; offered anew"`))
	if completed < 2 {
		t.Fatalf("%d servicings completed during the chaos (%d failed), want at least 2\n%s", completed, failed, h.logs())
	}

	// The well-behaved guest goes on after the last servicing, with
	// nothing lost, duplicated or corrupted on its stream or its disk.
	last := progressed("after the servicings", p.last())
	if last.Lost+last.Duplicated+last.Corrupted+last.Stray != 0 || last.Mismatches != 0 {
		t.Fatalf("well-behaved guest: %d packets, %d lost, %d duplicated, %d corrupted, %d stray, %d disk bytes mismatched",
			last.Packets, last.Lost, last.Duplicated, last.Corrupted, last.Stray, last.Mismatches)
	}
	t.Logf("well-behaved guest: %d packets, %d disk rounds (%d bytes) verified", last.Packets, last.Rounds, last.DiskBytes)

	// And the host serves a new guest and one more servicing.
	out, err := exec.Command(bin, "guest", "--socket", h.socket, "ping", "--count", "100", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("ping after: %v\n%s\nhost:\n%s", err, out, h.logs())
	}
	h.service(t, completed+1)
	progressed("after one more servicing", last)
}

// waitMsgs waits for the next log line with one of the messages msgs.
func (h *servicedHost) waitMsgs(t *testing.T, msgs ...string) logLine {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-h.lines:
			for _, m := range msgs {
				if l["msg"] == m {
					return l
				}
			}
		case <-timeout:
			t.Fatalf("none of %q in the host's log:\n%s", msgs, h.logs())
		}
	}
}

// skip reads the host's log lines for d, so that a chatty host (the
// hostile guest makes it log a lot) fills no buffer and loses none of the
// lines a wait after it looks for.
func (h *servicedHost) skip(d time.Duration) {
	for end := time.After(d); ; {
		select {
		case <-h.lines:
		case <-end:
			return
		}
	}
}
