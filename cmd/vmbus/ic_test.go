package main

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/device/ic"
)

// TestICDecode: DEVICES.md §3.10's heartbeat request decodes with its
// pipe header, a KVP set without one, and malformed input is exit 2 with
// one line.
func TestICDecode(t *testing.T) {
	hb := "01000000 3c000000 03000000 01000300 00002800 00000000 00030000 05000000" + strings.Repeat("00", 40)
	out := mustCLI(t, "ic", "decode", "--json", hb)
	var d struct {
		Pipe   *icPipeJSON  `json:"pipe"`
		Header icHeaderJSON `json:"header"`
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
