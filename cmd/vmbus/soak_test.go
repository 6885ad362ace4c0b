package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/soak"
)

// TestE2ESoak runs a small `vmbus soak --json`: 2 guests × 2 channels, 2
// servicings. Everything must check out, every guest must have streamed on
// both its channels (each echo device its own instance), the RSS rule must
// have been applied to real samples, and nothing may be left behind.
func TestE2ESoak(t *testing.T) {
	bin := vmbusBinary(t)
	tmp := t.TempDir()
	logs := t.TempDir()
	// A lenient bound: the rule is exercised here, not the host's memory,
	// which in the first seconds still grows as the guests arrive.
	var r soak.Result
	runJSON(t, tmp, 20*time.Second, &r, bin, "soak", "--json", "--guests", "2", "--channels", "2", "--duration", "8s",
		"--service-every", "3s", "--rss-every", "500ms", "--warmup", "0s", "--rss-growth", "1000", "--rate", "2000",
		"--disk-every", "100ms", "--log-dir", logs)
	if !r.Passed || len(r.Failures) > 0 {
		t.Errorf("passed %v, failures %q", r.Passed, r.Failures)
	}
	if r.Servicings != 2 || r.ServicingsFailed != 0 || len(r.BlackoutMs) != 2 || r.BlackoutP50ms <= 0 ||
		r.BlackoutP99ms < r.BlackoutP50ms || r.BlackoutMaxms != r.BlackoutP99ms {
		t.Errorf("servicings %d (%d failed), blackouts %v, p50 %v, p99 %v, max %v",
			r.Servicings, r.ServicingsFailed, r.BlackoutMs, r.BlackoutP50ms, r.BlackoutP99ms, r.BlackoutMaxms)
	}
	if len(r.PerGuest) != 2 {
		t.Fatalf("%d guests reported", len(r.PerGuest))
	}
	var packets uint64
	for _, g := range r.PerGuest {
		if g.Exit != 0 || g.Channels != 2 || len(g.ChannelPackets) != 2 || g.Packets == 0 || g.Packets != g.Sent ||
			g.ChannelPackets[0]+g.ChannelPackets[1] != g.Packets || g.Bytes != g.Packets*256 || g.DiskBytes == 0 {
			t.Errorf("guest %+v", g)
		}
		for _, n := range g.ChannelPackets {
			if n == 0 {
				t.Errorf("guest %d: a channel streamed nothing: %v", g.Guest, g.ChannelPackets)
			}
		}
		packets += g.Packets
	}
	if r.Packets != packets || r.Lost+r.Duplicated+r.Corrupted+r.Stray > 0 || r.Mismatches > 0 {
		t.Errorf("total %d packets (guests %d), lost %d, duplicated %d, corrupted %d, stray %d, mismatched %d",
			r.Packets, packets, r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatches)
	}
	if len(r.Samples) < soak.MinSamples {
		t.Fatalf("%d samples", len(r.Samples))
	}
	for _, s := range r.Samples {
		if s.RSSMiB <= 0 || s.FDs <= 0 || s.Threads <= 0 {
			t.Errorf("sample %+v", s)
		}
	}
	if last := r.Samples[len(r.Samples)-1]; last.Servicings != 2 || last.Packets != packets {
		t.Errorf("last sample %+v, want 2 servicings and %d packets", last, packets)
	}
	if last := r.Samples[len(r.Samples)-1]; !last.Final {
		t.Errorf("the last sample, after the guests, is not marked final: %+v", last)
	}
	if !r.RSS.Judged || r.RSS.Samples != len(r.Samples)-1 || r.RSS.FirstMedianMiB <= 0 || r.RSS.Grew {
		t.Errorf("rss %+v", r.RSS)
	}
	for name, want := range map[string]string{"host.jsonl": `"servicing complete"`, "guest-1.jsonl": `"result"`,
		"guest-2.jsonl": `"result"`, "soak.json": `"passed": true`} {
		b, err := os.ReadFile(logs + "/" + name)
		if err != nil || !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s: %v, %d bytes without %s", name, err, len(b), want)
		}
	}
	if p := processesUnder(t, tmp); len(p) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(p, "\n"))
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("%d entries left in the temporary directory, the first %s", len(left), left[0].Name())
	}
}

// TestSoakUsage: bad soak flags and bad --device forms are bad usage.
func TestSoakUsage(t *testing.T) {
	echoes := []string{"host", "--socket", "/nonexistent/s"}
	for range maxEchoChannels + 1 {
		echoes = append(echoes, "--device", "echo")
	}
	for _, args := range [][]string{
		{"soak", "--guests", "0"},
		{"soak", "--guests", "33"},
		{"soak", "--channels", "0"},
		{"soak", "--channels", "65"},
		{"soak", "--duration", "0s"},
		{"soak", "--service-every", "1ms"},
		{"soak", "--rss-every", "1ms"},
		{"soak", "--rate", "-1"},
		{"soak", "--rss-growth", "0"},
		{"soak", "--payload", "8"},
		{"soak", "extra"},
		{"host", "--socket", "/nonexistent/s", "--device", "echo=8"},
		{"host", "--socket", "/nonexistent/s", "--device", "echoes"},
		echoes,
		{"guest", "--socket", "/nonexistent/s", "demo-load", "--channels", "0"},
		{"guest", "--socket", "/nonexistent/s", "demo-load", "--channels", "65"},
		{"guest", "--socket", "/nonexistent/s", "demo-load", "--rate", "-1"},
		{"guest", "--socket", "/nonexistent/s", "demo-load", "--disk-offset", "100"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runWith(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr %s", args[:min(len(args), 6)], code, exitUsage, stderr.Bytes())
		}
	}
}

// TestE2ESoakShorterThanProgress: a soak whose load is shorter than the
// guests' progress interval (1 s) passes: each guest ran its load and
// sent its result before any progress line, which the soak took for a
// guest that ended before its load started.
func TestE2ESoakShorterThanProgress(t *testing.T) {
	var r soak.Result
	runJSON(t, t.TempDir(), 20*time.Second, &r, vmbusBinary(t), "soak", "--json", "--guests", "2", "--channels", "1",
		"--duration", "300ms", "--service-every", "0", "--rss-every", "100ms", "--warmup", "0s")
	if !r.Passed || len(r.PerGuest) != 2 || r.Packets == 0 {
		t.Fatalf("passed %v, failures %q, %d guests, %d packets", r.Passed, r.Failures, len(r.PerGuest), r.Packets)
	}
}
