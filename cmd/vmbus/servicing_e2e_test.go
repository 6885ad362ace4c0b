package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logLine is one JSON log line of the host.
type logLine map[string]any

// servicedHost is a `vmbus host --log-format json` process whose log lines
// the test reads as they come.
type servicedHost struct {
	cmd    *exec.Cmd
	socket string
	disk   string
	state  string
	lines  chan logLine
	mu     sync.Mutex
	all    []string
	spawn  bool // --servicing spawn: successors are new processes under a supervisor
}

// startServicedHost runs bin as the host with echo and a blk disk of size
// bytes and a state file, and more flags args, and waits until it listens.
func startServicedHost(t *testing.T, bin string, size int64, args ...string) *servicedHost {
	t.Helper()
	dir := t.TempDir()
	disk, state := filepath.Join(dir, "disk.img"), filepath.Join(dir, "state.bin")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, size); err != nil {
		t.Fatal(err)
	}
	h := startJSONHost(t, bin, filepath.Join(dir, "bus.sock"),
		append([]string{"--device", "echo", "--device", "blk=" + disk, "--state-file", state}, args...)...)
	h.disk, h.state = disk, state
	return h
}

// startJSONHost runs `bin host --socket socket --log-format json args...`,
// collects its log lines as they come, stops it (SIGTERM, expecting a clean
// exit) when the test ends, and waits until it listens.
func startJSONHost(t *testing.T, bin, socket string, args ...string) *servicedHost {
	t.Helper()
	h := &servicedHost{socket: socket, lines: make(chan logLine, 1024), spawn: slices.Contains(args, "spawn")}
	h.cmd = exec.Command(bin, append([]string{"host", "--socket", socket, "--log-format", "json"}, args...)...)
	stderr, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			h.mu.Lock()
			h.all = append(h.all, sc.Text())
			h.mu.Unlock()
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				select {
				case h.lines <- l:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		h.cmd.Process.Signal(syscall.SIGTERM)
		stopped := make(chan struct{})
		go func() { <-read; close(stopped) }()
		select {
		case <-stopped:
			if err := h.cmd.Wait(); err != nil {
				t.Errorf("host exit: %v\n%s", err, h.logs())
			}
		case <-time.After(10 * time.Second):
			// A spawn-mode host is a supervisor and its worker (and
			// perhaps a successor starting): end them all, or the
			// worker, orphaned, holds the log open and the wait never
			// returns.
			killTree(h.cmd.Process.Pid)
			h.cmd.Process.Kill()
			awaitLogEnd(t, read, stderr)
			h.cmd.Wait()
			t.Errorf("host did not stop\n%s", h.logs())
		}
	})
	h.waitMsg(t, "host listening")
	return h
}

func (h *servicedHost) logs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.all, "\n")
}

// waitMsg waits for the next log line with message msg.
func (h *servicedHost) waitMsg(t *testing.T, msg string) logLine {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-h.lines:
			if l["msg"] == msg {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q in the host's log:\n%s", msg, h.logs())
		}
	}
}

// service sends SIGHUP and waits for the successor's "servicing complete",
// returning the blackout in milliseconds.
func (h *servicedHost) service(t *testing.T, n int) float64 {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := h.waitMsg(t, "servicing complete")
	if l["servicing"] != float64(n) {
		t.Fatalf("servicing %v, want %d", l["servicing"], n)
	}
	if h.spawn {
		// A new process under the supervisor, which keeps its pid.
		if l["spawned"] != true || l["pid"] == float64(h.cmd.Process.Pid) {
			t.Fatalf("spawned %v, successor pid %v, the supervisor's %d", l["spawned"], l["pid"], h.cmd.Process.Pid)
		}
	} else if l["pid"] != float64(h.cmd.Process.Pid) {
		t.Fatalf("successor pid %v, the host's %d", l["pid"], h.cmd.Process.Pid)
	}
	return l["blackout_ms"].(float64)
}

// guestLoop runs `vmbus guest` with args again and again until stop is
// closed, checking each result; it returns the runs made.
func guestLoop(t *testing.T, socket string, stop <-chan struct{}, check func(map[string]float64) bool, args ...string) (runs chan int) {
	runs = make(chan int, 1)
	go func() {
		n := 0
		defer func() { runs <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			all := append([]string{"guest", "--socket", socket}, args...)
			out, err := exec.Command(vmbusBinary(t), append(all, "--json")...).Output()
			var m map[string]float64
			if err != nil || json.Unmarshal(out, &m) != nil || !check(m) {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Errorf("%v: %v: %s %s", args, err, out, stderr)
				return
			}
			n++
		}
	}()
	return runs
}

func cleanTraffic(m map[string]float64) bool {
	return m["sent"] > 0 && m["received"] == m["sent"] && m["lost"]+m["duplicated"]+m["corrupted"] == 0
}

// TestE2EServicing services a host 20 times while a guest streams through
// echo, pings (transactions awaiting completion across each save) and
// writes and verifies the blk disk: nothing may be lost, duplicated or
// corrupted, the pid stays, and the kept state inspects.
func TestE2EServicing(t *testing.T) { testServicing(t) }

// TestE2EServicingSpawn is TestE2EServicing with --servicing spawn: each
// servicing's successor is a new process, started before the pause; the
// supervisor's pid stays, and SIGTERM to it stops the host cleanly (the
// test's end).
func TestE2EServicingSpawn(t *testing.T) { testServicing(t, "--servicing", "spawn") }

// TestE2EServicingSpawnRT is TestE2EServicingSpawn with --rt-blackout:
// nothing may be lost either when each blackout runs at real-time
// priority (or, without the privilege, after the warning that it does
// not).
func TestE2EServicingSpawnRT(t *testing.T) {
	testServicing(t, "--servicing", "spawn", "--rt-blackout")
}

func testServicing(t *testing.T, args ...string) {
	h := startServicedHost(t, vmbusBinary(t), 2<<20, args...)
	stop := make(chan struct{})
	streams := guestLoop(t, h.socket, stop, cleanTraffic, "stream", "--payload", "200", "--count", "200000")
	pings := guestLoop(t, h.socket, stop, cleanTraffic, "ping", "--count", "2000")
	disks := guestLoop(t, h.socket, stop, func(m map[string]float64) bool {
		return m["size"] == 1<<20 && m["mismatches"] == 0
	}, "disk", "verify", "--size", "1048576")
	time.Sleep(300 * time.Millisecond) // traffic under way
	const n = 20
	var blackouts []float64
	for i := 1; i <= n; i++ {
		blackouts = append(blackouts, h.service(t, i))
		time.Sleep(150 * time.Millisecond)
	}
	close(stop)
	s, p, d := <-streams, <-pings, <-disks
	sort.Float64s(blackouts)
	t.Logf("%d servicings: blackout p50 %.1f ms, max %.1f ms; %d streams, %d pings, %d disk verifies", n, blackouts[n/2], blackouts[n-1], s, p, d)
	if s == 0 || p == 0 || d == 0 {
		t.Fatalf("a guest loop made no run: %d streams, %d pings, %d verifies", s, p, d)
	}

	// The kept state is the last servicing's. The loops' guests come and
	// go, and a servicing between two of their runs saves no channel: the
	// last one is made with a guest that holds its channels open.
	hold := exec.Command(vmbusBinary(t), "guest", "--socket", h.socket, "stream", "--payload", "200", "--count", "1000000000")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		hold.Process.Kill()
		hold.Wait()
	}()
	// The guest connects and opens its channels in its own time, which on
	// a loaded machine can take longer than any fixed wait: service again
	// (a bounded number of times) until a kept state holds its channels.
	var kinds map[string]int
	for try := 1; ; try++ {
		time.Sleep(300 * time.Millisecond)
		h.service(t, n+try)
		kinds = inspectKinds(t, h.state)
		if kinds["host-guest"] >= 1 || try == 20 {
			break
		}
	}
	if kinds["host-info"] != 1 || kinds["host-guest"] < 1 || kinds["host-bus-chunk"] < 1 || kinds["host-channel-chunk"] < 2 {
		t.Errorf("state records %v", kinds)
	}
}

// inspectKinds runs vmbus state inspect on the kept state and counts its
// records by kind, checking that each chunk shows what it holds.
func inspectKinds(t *testing.T, state string) map[string]int {
	t.Helper()
	out, err := exec.Command(vmbusBinary(t), "state", "inspect", "--json", state).Output()
	if err != nil {
		t.Fatalf("state inspect: %v", err)
	}
	var st struct {
		Scope   string `json:"scope"`
		Records []struct {
			Kind string          `json:"kind"`
			Body json.RawMessage `json:"body"`
		} `json:"records"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range st.Records {
		kinds[r.Kind]++
		if r.Kind == "host-channel-chunk" && !strings.Contains(string(r.Body), `"channel-info"`) {
			t.Errorf("channel chunk shows no channel-info: %s", r.Body)
		}
		if r.Kind == "host-bus-chunk" && !strings.Contains(string(r.Body), `"bus-connection"`) {
			t.Errorf("bus chunk shows no bus-connection: %s", r.Body)
		}
	}
	return kinds
}

// TestE2EServicingExecCannotRun replaces the host's binary with a file
// that cannot run, or deletes it: the exec would fail, so the pre-flight
// refuses the servicing before anything pauses, and the host serves on.
// (A servicing that fails after its save restores in its own process:
// TestE2EHVSockServicingExecFailsAfterSave.)
func TestE2EServicingExecCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, bin string)
		want  string
	}{
		{"not executable", func(t *testing.T, bin string) { breakBinary(t, bin, 0o644) }, "permission denied"},
		{"not a program", func(t *testing.T, bin string) { breakBinary(t, bin, 0o755) }, "exec format error"},
		{"deleted", func(t *testing.T, bin string) {
			if err := os.Remove(bin); err != nil {
				t.Fatal(err)
			}
		}, "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := copyBinary(t)
			h := startServicedHost(t, bin, 1<<20)
			if m := guestJSON(t, h.socket, "ping", "--count", "100"); !cleanTraffic(m) {
				t.Fatalf("ping before: %v", m)
			}
			stop := make(chan struct{})
			streams := guestLoop(t, h.socket, stop, cleanTraffic, "stream", "--payload", "100", "--count", "100000")
			time.Sleep(100 * time.Millisecond)
			tc.spoil(t, bin)
			if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			l := h.waitMsg(t, "servicing refused")
			if err, _ := l["err"].(string); !strings.Contains(err, "the binary cannot run: "+tc.want) {
				t.Fatalf("refused: %v", l["err"])
			}
			servedOn(t, h, stop, streams)
			if logs := h.logs(); strings.Contains(logs, "restoring in this process") {
				t.Fatalf("the refused servicing paused:\n%s", logs)
			}
			if d := guestJSON(t, h.socket, "disk", "verify", "--size", "65536"); d["mismatches"] != 0 {
				t.Fatalf("disk verify after: %v", d)
			}
		})
	}
}

// TestE2EServicingSpawnFails replaces the host's binary with a file that
// cannot run: with --servicing spawn the successor never starts, the host
// logs it and serves on without having paused a channel.
func TestE2EServicingSpawnFails(t *testing.T) {
	bin := copyBinary(t)
	h := startServicedHost(t, bin, 1<<20, "--servicing", "spawn")
	stop := make(chan struct{})
	streams := guestLoop(t, h.socket, stop, cleanTraffic, "stream", "--payload", "100", "--count", "100000")
	time.Sleep(100 * time.Millisecond)
	breakBinary(t, bin, 0o755)
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	l := h.waitMsg(t, "servicing failed")
	if l["stage"] != "spawn" {
		t.Fatalf("failed at stage %v, want spawn", l["stage"])
	}
	servedOn(t, h, stop, streams)
	if strings.Contains(h.logs(), "servicing complete") {
		t.Fatalf("a servicing completed:\n%s", h.logs())
	}
}

// copyBinary is a copy of the CLI that a test may replace (breakBinary).
func copyBinary(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(vmbusBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "vmbus")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// breakBinary replaces bin, at once (rename), with a file of mode perm
// that cannot run.
func breakBinary(t *testing.T, bin string, perm os.FileMode) {
	t.Helper()
	junk := bin + ".junk"
	if err := os.WriteFile(junk, []byte("not a program\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(junk, bin); err != nil {
		t.Fatal(err)
	}
}

// servedOn ends a stream loop (stop, streams) that ran across a failed
// servicing, and checks that it ran and that the host still answers pings.
func servedOn(t *testing.T, h *servicedHost, stop chan struct{}, streams chan int) {
	t.Helper()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	if n := <-streams; n == 0 {
		t.Fatal("no stream ran")
	}
	if m := guestJSON(t, h.socket, "ping", "--count", "100"); !cleanTraffic(m) {
		t.Fatalf("ping after: %v", m)
	}
}
