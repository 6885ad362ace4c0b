package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/demo"
	"github.com/govmbus/govmbus/internal/guestload"
)

// loadJSON is a stdout line of `vmbus guest demo-load`, as the e2e tests
// decode it.
type loadJSON = guestload.Line

// processesUnder lists the command lines of the live processes that name
// dir in their arguments.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			continue // gone meanwhile, or not ours
		}
		found = append(found, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return found
}

// TestE2EDemo runs `vmbus demo --json` with a temporary directory of its
// own: it must verify everything, report plausible figures, finish in
// time, and leave no process and no file behind.
func TestE2EDemo(t *testing.T) {
	bin := vmbusBinary(t)
	tmp := t.TempDir()
	var r demo.Result
	out, wall := runJSON(t, tmp, 30*time.Second, &r, bin, "demo", "--json", "--duration", "3s", "--servicings", "2")
	t.Logf("%s", out)
	if !r.Verified || len(r.Failures) > 0 {
		t.Errorf("verified %v, failures %q", r.Verified, r.Failures)
	}
	if r.Packets == 0 || r.StreamBytes != r.Packets*uint64(r.Payload) || r.PacketsPerSec <= 0 || r.BytesPerSec <= 0 {
		t.Errorf("stream: %d packets of %d, %d bytes, %.0f packets/s, %.0f B/s", r.Packets, r.Payload, r.StreamBytes, r.PacketsPerSec, r.BytesPerSec)
	}
	if r.StreamSeconds < 3 || r.Seconds < r.StreamSeconds || r.Seconds > wall.Seconds() {
		t.Errorf("stream %.3f s, demo %.3f s, wall %v", r.StreamSeconds, r.Seconds, wall)
	}
	if r.PingSent == 0 || r.PingReceived != r.PingSent || r.PingP50us <= 0 || r.PingP99us < r.PingP50us {
		t.Errorf("ping: %d of %d, p50 %.1f µs, p99 %.1f µs", r.PingReceived, r.PingSent, r.PingP50us, r.PingP99us)
	}
	if r.DiskBytesVerified <= 0 || r.DiskBytesPerSec <= 0 {
		t.Errorf("disk: %d bytes verified, %.0f B/s", r.DiskBytesVerified, r.DiskBytesPerSec)
	}
	if r.Servicings != 2 || len(r.BlackoutMs) != 2 {
		t.Errorf("servicings %d, blackouts %v", r.Servicings, r.BlackoutMs)
	}
	for _, ms := range r.BlackoutMs {
		if ms <= 0 || ms > r.BlackoutMaxms {
			t.Errorf("blackout %v ms, max %v ms", ms, r.BlackoutMaxms)
		}
	}
	if r.BlackoutP50ms <= 0 || r.BlackoutP50ms > r.BlackoutMaxms {
		t.Errorf("blackout p50 %v ms, max %v ms", r.BlackoutP50ms, r.BlackoutMaxms)
	}
	if r.Lost+r.Duplicated+r.Corrupted+r.Stray > 0 || r.Mismatched > 0 {
		t.Errorf("lost %d, duplicated %d, corrupted %d, stray %d, mismatched %d", r.Lost, r.Duplicated, r.Corrupted, r.Stray, r.Mismatched)
	}
	if p := processesUnder(t, tmp); len(p) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(p, "\n"))
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("%d entries left in the temporary directory, the first %s", len(left), left[0].Name())
	}
}

// runJSON runs the command line with TMPDIR=tmp, expects exit 0 within
// limit, and decodes stdout strictly (no unknown field, nothing after)
// into v as exactly one JSON value. It returns stdout and the wall time.
func runJSON(t *testing.T, tmp string, limit time.Duration, v any, args ...string) ([]byte, time.Duration) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", args[1], err, out, stderr.Bytes())
	}
	if wall > limit {
		t.Errorf("%s took %v", args[1], wall)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not one %s object: %v\n%s", args[1], err, out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value on stdout:\n%s", out)
	}
	return out, wall
}

// TestE2EDemoText runs the demo without --json, its output not a terminal:
// plain progress lines, then the summary table.
func TestE2EDemoText(t *testing.T) {
	out, err := exec.Command(vmbusBinary(t), "demo", "--duration", "1500ms", "--servicings", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"demo:  0.", "servicing 1 complete, blackout", "packets/s", "p99", "blackout p50",
		"0 lost, 0 duplicated, 0 corrupted", "0 disk bytes mismatched", "\nVERIFIED"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\r") || strings.Contains(s, "\x1b") {
		t.Errorf("terminal control characters in plain output:\n%q", s)
	}
}

// TestDemoUsage: bad flags and arguments are bad usage, before anything
// starts.
func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--duration", "0s"},
		{"demo", "--duration", "-1s"},
		{"demo", "--duration", "1h"},
		{"demo", "--duration", "soon"},
		{"demo", "--servicings", "-1"},
		{"demo", "--servicings", "1000"},
		{"demo", "--bogus"},
		{"demo", "extra"},
		{"guest", "--socket", "/nonexistent", "demo-load", "--duration", "0s"},
		{"guest", "--socket", "/nonexistent", "demo-load", "--disk-chunk", "1000"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runWith(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr %s", args, code, exitUsage, stderr.Bytes())
		}
		if stdout.Len() > 0 || !strings.HasPrefix(stderr.String(), "vmbus: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%q: stdout %q, stderr %q", args, stdout.Bytes(), stderr.Bytes())
		}
	}
	// The built binary agrees.
	err := exec.Command(vmbusBinary(t), "demo", "--servicings", "-1").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Errorf("binary: %v, want exit %d", err, exitUsage)
	}
}

// TestE2EDemoCapture runs the demo with --capture and a small size limit:
// it still verifies, and the capture holds the guest's control messages
// whole, up to the limit.
func TestE2EDemoCapture(t *testing.T) {
	bin := vmbusBinary(t)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "demo.pcapng")
	var r demo.Result
	runJSON(t, tmp, 30*time.Second, &r, bin, "demo", "--json", "--duration", "1s", "--servicings", "1",
		"--capture", file, "--capture-snaplen", "64", "--capture-max-bytes", "2000000")
	if !r.Verified {
		t.Fatalf("not verified: %q", r.Failures)
	}
	st, err := os.Stat(file)
	if err != nil || st.Size() > 2000000 || st.Size() == 0 {
		t.Fatalf("capture %v, %v", st, err)
	}
	out, err := exec.Command(bin, "capture", "read", file, "--json", "--filter", "kind=control,type=OfferChannel").Output()
	if err != nil {
		t.Fatalf("capture read: %v", err)
	}
	var offers int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if rec["truncated"] == true {
			t.Fatalf("a control message cut at the snap length: %s", l)
		}
		offers++
	}
	if offers != 2 {
		t.Fatalf("%d offers in the capture, want 2 (echo, blk):\n%s", offers, out)
	}
}
