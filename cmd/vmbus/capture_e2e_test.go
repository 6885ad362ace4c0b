package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// captureRecord is one line of vmbus capture read --json.
type captureRecord struct {
	Section int            `json:"section"`
	Channel uint32         `json:"channel"`
	Kind    string         `json:"kind"`
	Dir     string         `json:"dir"`
	Type    string         `json:"type"`
	Len     int            `json:"len"`
	Event   map[string]any `json:"event"`
	Bytes   string         `json:"bytes"`
}

// readCaptureJSON runs vmbus capture read --json on path with more args.
func readCaptureJSON(t *testing.T, path string, args ...string) []captureRecord {
	t.Helper()
	out, err := exec.Command(vmbusBinary(t), append([]string{"capture", "read", "--json", path}, args...)...).Output()
	if err != nil {
		t.Fatalf("capture read: %v", err)
	}
	var recs []captureRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r captureRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		recs = append(recs, r)
	}
	return recs
}

func TestE2ECaptureExec(t *testing.T)  { testCapture(t) }
func TestE2ECaptureSpawn(t *testing.T) { testCapture(t, "--servicing", "spawn") }

// testCapture: vmbus host --capture across a servicing (SIGHUP), a
// guest pinging its echo device before and after; vmbus capture read
// --json shows each request coming in and its completion going out
// exactly once, in two sections, with the servicing's events.
func testCapture(t *testing.T, args ...string) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bus.pcapng")
	h := startJSONHost(t, bin, filepath.Join(dir, "bus.sock"), append([]string{"--device", "echo", "--capture", path}, args...)...)
	const count = 25
	if m := guestJSON(t, h.socket, "ping", "--count", "25", "--warmup", "0", "--payload", "64"); m["received"] != count {
		t.Fatalf("ping before: %v", m)
	}
	h.service(t, 1)
	if m := guestJSON(t, h.socket, "ping", "--count", "25", "--warmup", "0", "--payload", "72"); m["received"] != count {
		t.Fatalf("ping after: %v", m)
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	h.waitMsg(t, "capture closed")

	recs := readCaptureJSON(t, path)
	type key struct {
		section, size int
		seq           uint64
		dir           string
	}
	seen := map[key]int{}
	var events []string
	for _, r := range recs {
		switch r.Kind {
		case "packet":
			b, err := hex.DecodeString(r.Bytes)
			if err != nil || len(b) < 24 {
				t.Fatalf("packet %+v", r)
			}
			seen[key{r.Section, len(b) - 16, binary.LittleEndian.Uint64(b[16:]), r.Dir + " " + r.Type}]++
		case "event":
			events = append(events, r.Event["msg"].(string))
		}
	}
	for s, size := range []int{64, 72} {
		for seq := range uint64(count) {
			for _, d := range []string{"in InBand", "out Completion"} {
				if n := seen[key{s, size, seq, d}]; n != 1 {
					t.Errorf("section %d, %d-byte ping %d, %s: %d times", s, size, seq, d, n)
				}
			}
		}
	}
	if len(seen) != 4*count {
		t.Errorf("%d distinct packets, want %d", len(seen), 4*count)
	}
	want := []string{"host listening", "servicing started", "servicing complete"}
	if len(events) < len(want) {
		t.Fatalf("events %q", events)
	}
	for i, e := range want {
		if events[i] != e {
			t.Errorf("events %q, want %q first", events, want)
		}
	}
	if n := len(readCaptureJSON(t, path, "--filter", "kind=control,type=OpenChannel")); n != 2 {
		t.Errorf("--filter kind=control,type=OpenChannel: %d records, want 2 (one per ping)", n)
	}
}

// TestE2ECaptureMaxBytes: --capture-max-bytes stops the capture before
// the file passes the limit; what it holds reads back whole, and a bad
// filter is bad usage.
func TestE2ECaptureMaxBytes(t *testing.T) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bus.pcapng")
	const limit = 4096
	h := startJSONHost(t, bin, filepath.Join(dir, "bus.sock"), "--device", "echo", "--capture", path,
		"--capture-max-bytes", strconv.Itoa(limit), "--capture-snaplen", "32")
	if m := guestJSON(t, h.socket, "ping", "--count", "100", "--warmup", "0"); m["received"] != 100 {
		t.Fatalf("ping: %v", m)
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	l := h.waitMsg(t, "capture closed")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := readCaptureJSON(t, path)
	if fi.Size() > limit || fi.Size() < limit-256 || len(recs) == 0 || l["dropped"] == float64(0) {
		t.Fatalf("file of %d bytes (limit %d), %d records, log %v", fi.Size(), limit, len(recs), l)
	}
	for _, r := range recs {
		if r.Kind == "packet" && len(r.Bytes) > 2*32 {
			t.Fatalf("a packet of %d bytes kept, snap length 32", len(r.Bytes)/2)
		}
	}
	err = exec.Command(bin, "capture", "read", path, "--filter", "colour=blue").Run()
	if exitCode(err) != exitUsage {
		t.Fatalf("bad filter: %v", err)
	}
}

func TestE2ECaptureAdminExec(t *testing.T)  { testCaptureAdmin(t) }
func TestE2ECaptureAdminSpawn(t *testing.T) { testCaptureAdmin(t, "--servicing", "spawn") }

// testCaptureAdmin: a capture started through the admin API while the
// host serves is carried on by a servicing's successor and stopped
// through the API; a second start while one runs is refused (exit 1).
func testCaptureAdmin(t *testing.T, args ...string) {
	bin := vmbusBinary(t)
	dir := t.TempDir()
	path, sock := filepath.Join(dir, "bus.pcapng"), filepath.Join(dir, "admin.sock")
	h := startJSONHost(t, bin, filepath.Join(dir, "bus.sock"), append([]string{"--device", "echo", "--admin", sock}, args...)...)
	adm := func(args ...string) ([]byte, error) {
		return exec.Command(bin, append([]string{"admin", "--socket", sock, "capture"}, args...)...).CombinedOutput()
	}
	if out, err := adm("stop"); exitCode(err) != exitFailure || !strings.Contains(string(out), "no capture is running") {
		t.Fatalf("a capture stop with none running: %v: %s", err, out)
	}
	if out, err := adm("start", dir); exitCode(err) != exitUsage {
		t.Fatalf("a capture start on a directory: %v: %s, want exit %d", err, out, exitUsage)
	}
	if out, err := adm("start", path); err != nil {
		t.Fatalf("capture start: %v: %s", err, out)
	}
	if out, err := adm("start", path); exitCode(err) != exitFailure {
		t.Fatalf("a second capture start: %v: %s", err, out)
	}
	guestJSON(t, h.socket, "ping", "--count", "10", "--warmup", "0", "--payload", "64")
	h.service(t, 1)
	guestJSON(t, h.socket, "ping", "--count", "10", "--warmup", "0", "--payload", "72")
	out, err := adm("stop", "--json")
	if err != nil {
		t.Fatalf("capture stop: %v: %s", err, out)
	}
	var st struct{ Records uint64 }
	if err := json.Unmarshal(out, &st); err != nil || st.Records == 0 {
		t.Fatalf("capture stop: %s (%v)", out, err)
	}
	// The whole file's records, the predecessor's section's too: before,
	// the successor's alone, beside the whole file's bytes.
	if all := readCaptureJSON(t, path); uint64(len(all)) != st.Records {
		t.Errorf("capture stop counted %d records, the file holds %d", st.Records, len(all))
	}
	ins := map[int]int{}
	for _, r := range readCaptureJSON(t, path, "--filter", "kind=packet,dir=in") {
		ins[r.Section]++
	}
	if ins[0] != 10 || ins[1] != 10 || len(ins) != 2 {
		t.Fatalf("requests captured by section: %v, want 10 in each of two", ins)
	}
}
