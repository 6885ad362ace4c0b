package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDeviceHost runs `vmbus host` with echo and a blk disk of size bytes
// in its own process and waits for its socket.
func startDeviceHost(t *testing.T, size int64) (socket, disk string) {
	t.Helper()
	bin := vmbusBinary(t)
	dir := t.TempDir()
	socket, disk = filepath.Join(dir, "bus.sock"), filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "host", "--socket", socket, "--device", "echo", "--device", "blk="+disk)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("host exit: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("host did not stop\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			return socket, disk
		}
		if time.Now().After(deadline) {
			t.Fatalf("host did not listen: %s", logs.String())
		}
	}
}

// guestJSON runs `vmbus guest --socket socket args... --json` and decodes
// its output into a map.
func guestJSON(t *testing.T, socket string, args ...string) map[string]float64 {
	t.Helper()
	all := append([]string{"guest", "--socket", socket}, args...)
	all = append(all, "--json")
	cmd := exec.Command(vmbusBinary(t), all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, stderr.String())
	}
	var m map[string]float64
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
	return m
}

func TestE2EDevices(t *testing.T) {
	socket, disk := startDeviceHost(t, 4<<20)

	p := guestJSON(t, socket, "ping", "--count", "300")
	for _, k := range []string{"sent", "received", "lost", "duplicated", "corrupted", "seconds", "latency_p50_us", "latency_p99_us"} {
		if _, ok := p[k]; !ok {
			t.Errorf("ping: no %q in %v", k, p)
		}
	}
	if p["sent"] != 300 || p["received"] != 300 || p["lost"]+p["corrupted"]+p["duplicated"] != 0 || p["latency_p50_us"] <= 0 {
		t.Errorf("ping: %v", p)
	}

	// With the floor measured first: its percentiles and the ratios,
	// consistent with each other.
	p = guestJSON(t, socket, "ping", "--count", "300", "--floor")
	if f := p["floor_eventfd_p50_us"]; f <= 0 || p["floor_eventfd_p99_us"] < f ||
		math.Abs(p["p50_vs_floor"]*f-p["latency_p50_us"]) > 0.01*p["latency_p50_us"] || p["p99_vs_floor"] <= 0 {
		t.Errorf("ping --floor: %v", p)
	}
	if f := p["floor_poller_p50_us"]; f <= 0 || math.Abs(p["p50_vs_poller_floor"]*f-p["latency_p50_us"]) > 0.01*p["latency_p50_us"] {
		t.Errorf("ping --floor, the poller floor: %v", p)
	}
	if p["floor_raw_poller_p50_us"] <= 0 {
		t.Errorf("ping --floor, the raw poller floor: %v", p)
	}
	p = guestJSON(t, socket, "ping", "--count", "300", "--from-completion")
	if p["sent"] != 300 || p["received"] != 300 || p["lost"]+p["corrupted"]+p["duplicated"] != 0 || p["latency_p50_us"] <= 0 {
		t.Errorf("ping --from-completion: %v", p)
	}
	// The warm-up's round trips are not counted, whatever their number.
	for _, w := range []string{"0", "500"} {
		if p = guestJSON(t, socket, "ping", "--count", "20", "--warmup", w); p["sent"] != 20 || p["received"] != 20 {
			t.Errorf("ping --warmup %s: %v", w, p)
		}
	}

	for _, size := range []string{"64", "16384"} {
		s := guestJSON(t, socket, "stream", "--payload", size, "--count", "5000")
		for _, k := range []string{"sent", "received", "lost", "duplicated", "corrupted", "seconds", "packets_per_sec", "bytes_per_sec"} {
			if _, ok := s[k]; !ok {
				t.Errorf("stream: no %q in %v", k, s)
			}
		}
		if s["sent"] != 5000 || s["received"] != 5000 || s["lost"]+s["corrupted"]+s["duplicated"] != 0 || s["bytes_per_sec"] <= 0 {
			t.Errorf("stream %s: %v", size, s)
		}
	}

	d := guestJSON(t, socket, "disk", "verify", "--size", "3000000")
	if d["size"] != 3000000 || d["mismatches"] != 0 || d["disk_size"] != 4<<20 {
		t.Errorf("disk verify: %v", d)
	}
	// The pattern reached the file.
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b[:3000000], []byte{0}) > 3000000/100 {
		t.Error("disk file still mostly zero after verify")
	}

	// A size beyond the disk is bad usage.
	err = exec.Command(vmbusBinary(t), "guest", "--socket", socket, "disk", "verify", "--size", "99999999").Run()
	if exitCode(err) != 2 {
		t.Errorf("oversized verify: %v, want exit 2", err)
	}
}

func TestE2EDeviceExitStatus(t *testing.T) {
	bin := vmbusBinary(t)
	none := filepath.Join(t.TempDir(), "none")
	for _, args := range [][]string{
		{"guest", "--socket", none, "ping"},
		{"guest", "--socket", none, "stream", "--payload", "64", "--count", "10"},
		{"guest", "--socket", none, "disk", "verify"},
	} {
		if err := exec.Command(bin, args...).Run(); exitCode(err) != 1 {
			t.Errorf("%v: %v, want exit 1 (host unreachable)", args, err)
		}
	}
	for _, args := range [][]string{
		{"guest", "--socket", none, "stream", "--payload", "8", "--count", "10"},
		{"guest", "--socket", none, "stream", "--payload", "64", "--count", "0"},
		{"guest", "--socket", none, "stream", "--payload", "64", "--count", "10", "--idle", "0"},
		{"guest", "--socket", none, "ping", "--count", "-1"},
		{"guest", "--socket", none, "ping", "--warmup", "-1"},
		// Each round trip's time is kept: a count beyond the bound ran
		// out of memory before it started.
		{"guest", "--socket", none, "ping", "--count", "99999999999"},
		{"guest", "--socket", none, "ping", "--warmup", "99999999999"},
		{"guest", "--socket", none, "ping", "--bogus"},
		{"guest", "--socket", none, "disk"},
		{"guest", "--socket", none, "disk", "verify", "--size", "-5"},
		{"guest", "ping"},
		{"host", "--socket", none, "--device", "blk=" + none},
		{"host", "--socket", none, "--device", "blk="},
		// A directory for the capture file is bad input, not a failure.
		{"host", "--socket", none, "--capture", t.TempDir()},
		{"demo", "--capture", t.TempDir()},
		{"guest", "--socket", none, "hvsock", "listen", "5000", "--exec", ""},
	} {
		if err := exec.Command(bin, args...).Run(); exitCode(err) != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
	}
}

// TestE2EBenchFloor runs `vmbus bench floor` with its peer process: the
// four floors measured, every field there, bad input refused with exit 2.
func TestE2EBenchFloor(t *testing.T) {
	bin := vmbusBinary(t)
	out, err := exec.Command(bin, "bench", "floor", "--count", "500", "--json").Output()
	if err != nil {
		t.Fatalf("bench floor: %v", err)
	}
	var r map[string]map[string]float64
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"eventfd", "poller", "raw_poller", "spin"} {
		l := r[k]
		if l["count"] != 500 || l["p50_ns"] <= 0 || l["p99_ns"] < l["p50_ns"] || l["cpu_per_round_trip_ns"] <= 0 {
			t.Errorf("%s floor: %v", k, l)
		}
	}
	// A count beyond the bound ran out of memory (a runtime crash, whose
	// exit status is 2 too): the message tells them apart.
	for _, n := range []string{"0", "99999999999"} {
		out, err := exec.Command(bin, "bench", "floor", "--count", n).CombinedOutput()
		if exitCode(err) != 2 || !strings.Contains(string(out), "want 0 < --count <=") {
			t.Errorf("--count %s: %v, %s; want exit 2 and the bound", n, err, out)
		}
	}
}

// TestE2EGuestDeviceNotOffered: a guest command for a device the host
// does not offer says so once the offers are in, instead of waiting ten
// seconds for a channel that will not come.
func TestE2EGuestDeviceNotOffered(t *testing.T) {
	bin := vmbusBinary(t)
	h := startJSONHost(t, bin, filepath.Join(t.TempDir(), "bus.sock"), "--device", "heartbeat")
	for _, args := range [][]string{{"ping", "--count", "3"}, {"stream", "--count", "10"}, {"disk", "verify"}} {
		start := time.Now()
		out, err := exec.Command(bin, append([]string{"guest", "--socket", h.socket}, args...)...).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "the host offers no") || time.Since(start) > 5*time.Second {
			t.Errorf("guest %v: exit %d after %v: %s", args, code, time.Since(start).Round(time.Millisecond), out)
		}
	}
}
