package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort is a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape fetches /metrics and returns the samples by their full name
// with labels, as the text format writes them.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// echoPackets sums the echo channels' packets_total of one direction.
func echoPackets(m map[string]float64, dir string) (sum float64, n int) {
	for k, v := range m {
		if strings.HasPrefix(k, "govmbus_channel_packets_total{") && strings.Contains(k, `device="echo"`) && strings.Contains(k, `direction="`+dir+`"`) {
			sum += v
			n++
		}
	}
	return sum, n
}

// TestE2EMetrics runs the host with --metrics and a guest streaming
// through echo (and using the disk) in another process, scrapes the
// channel counters and pprof, then services the host once and scrapes the
// successor.
func TestE2EMetrics(t *testing.T) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	h := startJSONHost(t, bin, filepath.Join(dir, "bus.sock"),
		"--device", "echo", "--device", "blk="+disk, "--metrics", addr)
	if got := h.waitMsg(t, "metrics listening")["addr"]; got != addr {
		t.Fatalf("metrics listening on %v, want %s", got, addr)
	}

	// The guest: one connection streaming through echo for long enough,
	// one JSON progress line every 50ms.
	g := exec.Command(bin, "guest", "--socket", h.socket, "demo-load", "--duration", "60s", "--interval", "50ms", "--pings", "10")
	gout, err := g.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Process.Kill()
		io.Copy(io.Discard, gout)
		g.Wait() //nolint:errcheck // killed
	})
	progress := bufio.NewScanner(gout)
	// streamed waits for a progress line with at least min packets back
	// and returns its count.
	streamed := func(min uint64) uint64 {
		t.Helper()
		for progress.Scan() {
			var l loadJSON
			if err := json.Unmarshal(progress.Bytes(), &l); err != nil {
				t.Fatalf("guest output %q: %v", progress.Text(), err)
			}
			if l.Type == "progress" && l.Packets >= min {
				return l.Packets
			}
		}
		t.Fatalf("guest stopped: %v\nhost:\n%s", progress.Err(), h.logs())
		return 0
	}

	// Every packet the guest has back went through the host's echo
	// channel both ways; the receive side counts a batch when it ends.
	want := streamed(1000)
	deadline := time.Now().Add(10 * time.Second)
	var m map[string]float64
	for {
		m = scrape(t, addr)
		in, n := echoPackets(m, "in")
		out, _ := echoPackets(m, "out")
		if n == 1 && in >= float64(want) && out >= float64(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo channels %d, packets in %v out %v; the guest streamed %d", n, in, out, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"govmbus_channel_bytes_total", "govmbus_channel_ring_used_bytes", "govmbus_channel_ring_size_bytes",
		"govmbus_channel_signals_total", "govmbus_channel_completions_pending", "govmbus_channel_queued_total"} {
		found := false
		for k := range m {
			found = found || strings.HasPrefix(k, name+"{")
		}
		if !found {
			t.Errorf("no %s in /metrics", name)
		}
	}
	if m["govmbus_servicings_total"] != 0 || m["govmbus_servicing_blackout_seconds_count"] != 0 {
		t.Errorf("before servicing: servicings %v, blackouts %v", m["govmbus_servicings_total"], m["govmbus_servicing_blackout_seconds_count"])
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/debug/pprof/: %s", resp.Status)
	}

	// One servicing: the successor listens again on the same address.
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.waitMsg(t, "servicing complete")
	if got := h.waitMsg(t, "metrics listening")["addr"]; got != addr {
		t.Fatalf("successor's metrics on %v, want %s", got, addr)
	}
	m = scrape(t, addr)
	if m["govmbus_servicings_total"] != 1 || m["govmbus_servicing_blackout_seconds_count"] != 1 {
		t.Errorf("after servicing: servicings %v, blackouts %v", m["govmbus_servicings_total"], m["govmbus_servicing_blackout_seconds_count"])
	}
	if s := m["govmbus_servicing_blackout_seconds_sum"]; s <= 0 || s > 30 {
		t.Errorf("blackout %vs", s)
	}
	// The guest streams on through the restored channel.
	base, _ := echoPackets(m, "in")
	streamed(want + 1000)
	deadline = time.Now().Add(10 * time.Second)
	for {
		in, n := echoPackets(scrape(t, addr), "in")
		if n == 1 && in > base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after servicing: echo channels %d, packets in %v (was %v)", n, in, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
