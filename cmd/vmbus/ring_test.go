package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/govmbus/govmbus/internal/ringtext"
)

// cli runs the command line in-process and returns exit status, stdout and
// stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runWith(args, &out, &errb)
	return code, out.String(), errb.String()
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := cli(t, args...)
	if code != 0 {
		t.Fatalf("vmbus %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestRingKnownAnswerThroughCLI(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.ring")
	mustCLI(t, "ring", "init", "--data-size", "4096", f)
	for i, s := range []string{"hello", "vmbus-go", "ring-buffer-!"} {
		mustCLI(t, "ring", "write", f, "--type", "inband", "--txid", string(rune('1'+i)), "--payload", hex.EncodeToString([]byte(s)))
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != "72e700ad030ffa352a251a0d476cbd1c0c7e8ac6b8b4fb92dd6ec6118a43548c" {
		t.Fatalf("sha256 %s", got)
	}
}

func TestRingReadJSON(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.ring")
	mustCLI(t, "ring", "init", "--data-size", "8192", f)
	mustCLI(t, "ring", "write", f, "--type", "inband", "--txid", "1", "--payload", "68656c6c6f")
	mustCLI(t, "ring", "write", f, "--type", "gpa-direct", "--txid", "7", "--completion-requested",
		"--payload", "cafe", "--range", "0x12345:16:32", "--range", "74566:0:8192")
	mustCLI(t, "ring", "write", f, "--type", "transfer-pages", "--txid", "9", "--completion-requested",
		"--transfer-set", "1", "--transfer-range", "0:100", "--transfer-range", "4096:7")
	mustCLI(t, "ring", "write", f, "--type", "completion", "--txid", "7")

	before, _ := os.ReadFile(f)
	dump := mustCLI(t, "ring", "dump", f, "--json")
	after, _ := os.ReadFile(f)
	if !bytes.Equal(before, after) {
		t.Fatal("dump changed the ring file")
	}
	var d ringtext.Dump
	if err := json.Unmarshal([]byte(dump), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Packets) != 4 || d.WriteIndex == 0 || d.ReadIndex != 0 || d.DataSize != 8192 {
		t.Fatalf("dump %+v", d)
	}

	got := mustCLI(t, "ring", "read", f, "--max", "3")
	want := `{"type":6,"flags":0,"txid":1,"payload":"68656c6c6f000000"}
{"type":9,"flags":1,"txid":7,"payload":"cafe000000000000","ranges":[{"offset":16,"count":32,"pfns":[74565]},{"offset":0,"count":8192,"pfns":[74566,74567]}]}
{"type":7,"flags":1,"txid":9,"payload":"","transfer_set":1,"transfer_ranges":[{"offset":0,"count":100},{"offset":4096,"count":7}]}
`
	if got != want {
		t.Fatalf("read printed\n%s\nwant\n%s", got, want)
	}
	if got := mustCLI(t, "ring", "read", f); got != `{"type":11,"flags":0,"txid":7,"payload":""}`+"\n" {
		t.Fatalf("second read printed %q", got)
	}
	if got := mustCLI(t, "ring", "read", f); got != "" {
		t.Fatalf("read of an empty ring printed %q", got)
	}
}

func TestRingFullExit1(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.ring")
	mustCLI(t, "ring", "init", "--data-size", "4096", f)
	for i := 0; i < 127; i++ {
		mustCLI(t, "ring", "write", f, "--type", "inband", "--txid", "1", "--payload", "0102030405060708")
	}
	before, _ := os.ReadFile(f)
	code, _, errs := cli(t, "ring", "write", f, "--type", "inband", "--txid", "1", "--payload", "01")
	if code != 1 || !strings.Contains(errs, "ring full") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if after, _ := os.ReadFile(f); !bytes.Equal(before, after) {
		t.Fatal("a failed write changed the file")
	}
	code, _, errs = cli(t, "ring", "write", f, "--type", "inband", "--txid", "1", "--payload", strings.Repeat("00", 5000))
	if code != 1 || !strings.Contains(errs, "ring full") {
		t.Fatalf("oversized: exit %d, stderr %q", code, errs)
	}
}

func TestRingCorruptExit2(t *testing.T) {
	f := filepath.Join(t.TempDir(), "r.ring")
	mustCLI(t, "ring", "init", "--data-size", "4096", f)
	mustCLI(t, "ring", "write", f, "--type", "inband", "--txid", "1", "--payload", "01")
	mustCLI(t, "ring", "write", f, "--type", "inband", "--txid", "2", "--payload", "02")
	b, _ := os.ReadFile(f)
	b[4096+32+2] = 1 // second packet: data offset 1
	os.WriteFile(f, b, 0o644)
	for _, args := range [][]string{{"ring", "dump", f}, {"ring", "read", f}} {
		code, out, errs := cli(t, args...)
		if code != 2 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "offset 0x20") || !strings.Contains(errs, "below 2") {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		if args[1] == "read" && !strings.Contains(out, `"txid":1`) {
			t.Fatalf("read did not print the packet before the damage: %q", out)
		}
	}
	// read consumed the good packet, and only it.
	if b, _ := os.ReadFile(f); b[4] != 32 {
		t.Fatalf("read index %d after read of a damaged ring, want 32", b[4])
	}
}

func TestRingBadUsageExit2(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "r.ring")
	mustCLI(t, "ring", "init", "--data-size", "4096", f)
	odd := filepath.Join(dir, "odd")
	os.WriteFile(odd, make([]byte, 5000), 0o644)
	// A FIFO with no writer: its open waited for one.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ring", "dump", fifo},
		{"ring", "read", fifo},
		{"state", "inspect", fifo},
		{"ring"},
		{"ring", "bogus"},
		{"ring", "init", f},
		{"ring", "init", "--data-size", "4096", f},
		{"ring", "init", "--data-size", "4000", filepath.Join(dir, "x")},
		{"ring", "write", f, "--txid", "1"},
		{"ring", "write", f, "--type", "inband"},
		{"ring", "write", f, "--type", "bogus", "--txid", "1"},
		{"ring", "write", f, "--type", "inband", "--txid", "1", "--payload", "xyz"},
		{"ring", "write", f, "--type", "inband", "--txid", "1", "--range", "1:0:1"},
		{"ring", "write", f, "--type", "gpa-direct", "--txid", "1"},
		{"ring", "write", f, "--type", "gpa-direct", "--txid", "1", "--range", "1:4096:1"},
		{"ring", "write", f, "--type", "gpa-direct", "--txid", "1", "--range", "1:0"},
		{"ring", "write", f, "--type", "gpa-direct", "--txid", "1", "--range", "1,2,3:0:1"},
		// The page after the last page number: it wrapped to 0.
		{"ring", "write", f, "--type", "gpa-direct", "--txid", "1", "--range", "0xffffffffffffffff:0:8192"},
		{"ring", "write", f, "--type", "transfer-pages", "--txid", "1"},
		{"ring", "write", f, "--type", "transfer-pages", "--txid", "1", "--transfer-range", "1"},
		{"ring", "write", f, "--type", "inband", "--txid", "1", "--transfer-set", "1"},
		{"ring", "write", filepath.Join(dir, "missing"), "--type", "inband", "--txid", "1"},
		{"ring", "write", odd, "--type", "inband", "--txid", "1"},
		{"ring", "read", f, "--max", "-1"},
		{"ring", "read"},
		{"ring", "dump", odd},
		{"ring", "dump", dir},
		{"capture", "read", dir},
		{"top", "--admin", "x", "--sort", "z"},
		{"guest", "--socket", "x", "--poll", "-1s", "list"},
		{"host", "--socket", "x", "--stall-after", "0s"},
		{"host", "--socket", "x", "--device", ""},
		{"top", "--admin", "x", "--count", "-1"},
		{"top", "--admin", "x", "--interval", "0s"},
		{"admin", "--socket", "x", "kvp", "1", "get", "0", ""},
		{"admin", "--socket", "x", "kvp", "1", "set", "0", "..", "v"},
		{"host", "--socket", "x", "--chaos", "--chaos-duration", "-1s"},
		{"host", "--socket", "x", "--hvsock-relay", "5000=unix:/a", "--hvsock-relay", "5000=unix:/b"},
		{"bench", "ring", "--ring-size", "4294967296"},
		{"bench", "ring", "--ring-size", "1000"},
		{"bench", "ring", "--payload", "5000", "--ring-size", "4096"},
		{"bench", "ring", "--count", "0"},
		{"bench", "ring", "--bogus"},
		{"bench", "ring", "--round-trip", "--payload", "8"},
		{"bench", "ring", "--round-trip", "--batch", "2"},
		{"bench", "ring", "--processes", "2"},
		{"bench", "ring", "--round-trip", "--processes", "2"},
		{"bench", "ring", "--round-trip", "--signal", "--processes", "3"},
		{"nosuchcommand"},
		{"help", "nosuchcommand"},
		{"help", "guest", "nosuch"},
	} {
		code, _, errs := cli(t, args...)
		if code != 2 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "vmbus: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line", args, code, errs)
		}
	}
}

func TestBenchRingJSON(t *testing.T) {
	for _, extra := range [][]string{nil, {"--signal"}, {"--zero-copy", "--batch", "4"}, {"--signal", "--round-trip"}} {
		args := append([]string{"bench", "ring", "--payload", "64", "--count", "20000", "--ring-size", "8192", "--json"}, extra...)
		out := mustCLI(t, args...)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %v: %s", extra, err, out)
		}
		for _, k := range []string{"packets", "payload", "seconds", "packets_per_sec", "bytes_per_sec", "signals"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("%v: key %q missing in %s", extra, k, out)
			}
		}
		if m["packets"].(float64) != 20000 || m["payload"].(float64) != 64 {
			t.Fatalf("%v: %s", extra, out)
		}
		if (len(extra) > 0 && extra[0] == "--signal") != (m["signals"].(float64) > 0) {
			t.Fatalf("%v: signals %v", extra, m["signals"])
		}
	}
}

// TestBenchRingRoundTripTwoProcesses runs the bare-ring round trip with
// its echo side in a second process, through the built binary (the echo
// process is the binary itself).
func TestBenchRingRoundTripTwoProcesses(t *testing.T) {
	bin := vmbusBinary(t)
	for _, payload := range []string{"64", "16384"} {
		out, err := exec.Command(bin, "bench", "ring", "--round-trip", "--signal", "--processes", "2",
			"--payload", payload, "--count", "20000", "--json").Output()
		if err != nil {
			t.Fatalf("payload %s: %v", payload, err)
		}
		var res struct {
			Packets  int    `json:"packets"`
			Checksum uint64 `json:"checksum"`
			Signals  int    `json:"signals"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		// Every answer came back once, in order, intact (the run fails
		// otherwise), and carried its sequence number.
		if res.Packets != 20000 || res.Checksum != 20000*19999/2 || res.Signals == 0 {
			t.Fatalf("payload %s: %s", payload, out)
		}
	}
}

// TestHostDeviceKeepsCommas: one --device is one device, however many
// commas its FILE holds.
func TestHostDeviceKeepsCommas(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "d,1.img")
	code, _, errs := cli(t, "host", "--socket", filepath.Join(t.TempDir(), "s"), "--device", "blk="+missing)
	if code != 2 || !strings.Contains(errs, missing) {
		t.Fatalf("exit %d, %q: want the whole name %s refused", code, errs, missing)
	}
}

// TestHelp: help names a command's documentation, and help for one that
// does not exist is bad usage (TestRingBadUsageExit2).
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"help", "host"}, {"help", "guest", "ping"}} {
		code, out, errs := cli(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, %q %q", args, code, out, errs)
		}
	}
}
