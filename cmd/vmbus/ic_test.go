package main

import (
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/internal/ringtext"
)

// TestICDecode: DEVICES.md §3.10's heartbeat request decodes with its
// pipe header, a KVP set without one, and malformed input is exit 2 with
// one line.
func TestICDecode(t *testing.T) {
	hb := "01000000 3c000000 03000000 01000300 00002800 00000000 00030000 05000000" + strings.Repeat("00", 40)
	out := mustCLI(t, "ic", "decode", "--json", hb)
	var d struct {
		Pipe   *ringtext.ICPipe  `json:"pipe"`
		Header ringtext.ICHeader `json:"header"`
		Body   struct{ Sequence uint64 }
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.Pipe == nil || d.Pipe.Size != 60 || d.Header.Type != "heartbeat" || d.Header.Flags != "transaction|request" || d.Body.Sequence != 5 {
		t.Fatalf("%s", out)
	}
	body, err := (&ic.KVP{Op: ic.KVPSet, Pool: ic.PoolGuest, ValueType: ic.TypeString, Key: "k", Value: "v"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	msg := ic.Build(ic.Header{Type: ic.MsgKVP, Flags: ic.FlagsRequest}, body)[ic.PipeHeaderSize:]
	out = mustCLI(t, "ic", "decode", hex.EncodeToString(msg))
	if !strings.Contains(out, `"operation":"set"`) || !strings.Contains(out, `"pool":"guest"`) || strings.Contains(out, "pipe:") {
		t.Fatalf("%s", out)
	}
	for _, bad := range []string{"zz", "0100000010", "01000000ff000000" + strings.Repeat("00", 20)} {
		code, stdout, stderr := cli(t, "ic", "decode", bad)
		if code != exitUsage || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", bad, code, stdout, stderr)
		}
	}
}

// TestRingDumpIC: `ring dump --ic` decodes the IC messages of a ring's
// in-band packets as `ic decode` does (DEVICES.md §3.10's negotiate
// request and answer and heartbeat request, a shutdown request), says why
// a payload that is not one is not, leaves other packet types alone, and
// exits 0. Without --ic the dump is what it was.
func TestRingDumpIC(t *testing.T) {
	negReq := "01000000 2c000000 00000000 00000000 00001800 00000000 00030000 02000200 00000000 01000000 03000000 03000000 04000000 00000000"
	negAns := "01000000 2c000000 00000000 00000000 00001000 00000000 00050000 01000100 00000000 03000000 03000000 03000000 04000000 00000000"
	hb := "01000000 3c000000 03000000 01000300 00002800 00000000 00030000 05000000" + strings.Repeat("00", 40)
	body, err := (&ic.Shutdown{Reason: ic.ReasonPlanned, Timeout: 30, Flags: ic.ShutdownRestart, Message: "bye"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sd := hex.EncodeToString(ic.Build(ic.Header{Framework: ic.Version{Major: 3}, Type: ic.MsgShutdown, MsgVersion: ic.Version{Major: 3}, TxID: 7, Flags: ic.FlagsRequest}, body))
	payloads := []string{negReq, negAns, hb, sd, hex.EncodeToString([]byte("hello"))}

	f := filepath.Join(t.TempDir(), "r.ring")
	mustCLI(t, "ring", "init", "--data-size", "8192", f)
	for i, p := range payloads {
		mustCLI(t, "ring", "write", f, "--type", "inband", "--txid", strconv.Itoa(i+1), "--payload", strings.ReplaceAll(p, " ", ""))
	}
	mustCLI(t, "ring", "write", f, "--type", "completion", "--txid", "9")

	// Text: each IC message's `ic decode` lines, indented, under its packet.
	plain := mustCLI(t, "ring", "dump", f)
	text := mustCLI(t, "ring", "dump", f, "--ic")
	var packetLines, icLines []string
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "  ") {
			icLines = append(icLines, strings.TrimPrefix(l, "  "))
		} else {
			packetLines = append(packetLines, l)
		}
	}
	if strings.Join(packetLines, "") != plain {
		t.Fatalf("--ic changed the packet lines:\n%s\nwithout --ic:\n%s", text, plain)
	}
	if strings.Contains(plain, "ic:") {
		t.Fatalf("dump without --ic decoded:\n%s", plain)
	}
	var want string
	for _, p := range payloads[:4] {
		want += mustCLI(t, "ic", "decode", p)
	}
	want += "ic: malformed message: IC header of 8 bytes, want 20\n"
	if got := strings.Join(icLines, ""); got != want {
		t.Fatalf("--ic printed\n%s\nwant\n%s\nwhole dump:\n%s", got, want, text)
	}
	for _, s := range []string{
		"ic: negotiate framework 0.0 message 0.0 size 24 status ok id 0 flags transaction|request\n",
		`body: {"frameworks":["1.0","3.0"],"messages":["3.0","4.0"]}`,
		`body: {"framework":"3.0","message":"3.0"}`,
		"pipe: type 1 size 60\n  ic: heartbeat framework 3.0 message 3.0 size 40 status ok id 0 flags transaction|request\n",
		`"Sequence":5`,
		"ic: shutdown framework 3.0 message 3.0 size 2060 status ok id 7 flags transaction|request\n",
		`"action":"reboot"`, `"message":"bye"`, `"timeout_s":30`,
		"payload=68656c6c6f000000\n  ic: malformed message",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("dump --ic lacks %q:\n%s", s, text)
		}
	}

	// JSON: an "ic" object per IC message, "ic_error" for the other
	// in-band payload, neither for the completion.
	out := mustCLI(t, "ring", "dump", f, "--json", "--ic")
	var d struct {
		Packets []struct {
			Type    uint16
			TxID    uint64
			IC      *json.RawMessage `json:"ic"`
			ICError string           `json:"ic_error"`
		}
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Packets) != 6 {
		t.Fatalf("%d packets: %s", len(d.Packets), out)
	}
	for i, p := range payloads[:4] {
		var got, want any
		if d.Packets[i].IC == nil || d.Packets[i].ICError != "" {
			t.Fatalf("packet %d: ic %v, ic_error %q", i, d.Packets[i].IC, d.Packets[i].ICError)
		}
		json.Unmarshal(*d.Packets[i].IC, &got)
		json.Unmarshal([]byte(mustCLI(t, "ic", "decode", "--json", p)), &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("packet %d: ic %s, ic decode --json %v", i, *d.Packets[i].IC, want)
		}
	}
	var hbIC struct {
		Pipe   ringtext.ICPipe
		Header ringtext.ICHeader
		Body   struct{ Sequence uint64 }
	}
	json.Unmarshal(*d.Packets[2].IC, &hbIC)
	if hbIC.Pipe.Size != 60 || hbIC.Header.Type != "heartbeat" || hbIC.Header.Flags != "transaction|request" || hbIC.Body.Sequence != 5 {
		t.Errorf("heartbeat %+v", hbIC)
	}
	if p := d.Packets[4]; p.IC != nil || p.ICError != "malformed message: IC header of 8 bytes, want 20" {
		t.Errorf("hello: ic %v, ic_error %q", p.IC, p.ICError)
	}
	if p := d.Packets[5]; p.Type != 11 || p.IC != nil || p.ICError != "" {
		t.Errorf("completion: %+v", p)
	}
	if plainJSON := mustCLI(t, "ring", "dump", f, "--json"); strings.Contains(plainJSON, `"ic`) {
		t.Errorf("--json without --ic: %s", plainJSON)
	}
}
