package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

// TestStateInspect shows a state whose record kinds no layer registered:
// they print as hex. (Kinds the layers register are decoded; their own
// tests cover that.)
func TestStateInspect(t *testing.T) {
	sv, err := savedstate.NewSaverID(savedstate.ScopeChannel, []byte("golden identity"), []savedstate.Record{
		{Kind: 0x7E01, Flags: savedstate.FlagCritical, Body: []byte("channel")},
		{Kind: 0x7E07, Body: []byte{1, 2, 3, 4, 5}},
	}, 0x0123456789ABCDEF)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(t.TempDir(), "unregistered.state")
	if err := os.WriteFile(golden, sv.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "state", "inspect", golden)
	if !strings.Contains(out, "channel scope") || !strings.Contains(out, "4 records") || !strings.Contains(out, "0x0123456789abcdef") {
		t.Fatalf("inspect printed:\n%s", out)
	}
	var s stateJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "state", "inspect", golden, "--json")), &s); err != nil {
		t.Fatal(err)
	}
	if s.Scope != "channel" || len(s.Records) != 2 || !s.Records[0].Critical || s.Records[1].Body != "0102030405" {
		t.Fatalf("json %+v", s)
	}

	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.state")
	data[40] ^= 1
	os.WriteFile(bad, data, 0o644)
	trunc := filepath.Join(dir, "trunc.state")
	os.WriteFile(trunc, data[:64], 0o644)
	for _, args := range [][]string{
		{"state", "inspect", bad},
		{"state", "inspect", trunc},
		{"state", "inspect", filepath.Join(dir, "missing")},
		{"state", "inspect"},
		{"state"},
	} {
		code, _, errs := cli(t, args...)
		if code != 2 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d stderr %q", args, code, errs)
		}
	}
}

// TestStateInspectLayers inspects a real channel state and a real bus
// state (the golden files of the channel and host packages): every record
// is decoded by the kind its layer registered.
func TestStateInspectLayers(t *testing.T) {
	for _, tc := range []struct {
		file, scope string
		kinds       []string
	}{
		{filepath.Join("..", "..", "channel", "testdata", "golden", "channel-v1.state"), "channel", []string{"channel-info", "channel-mappings", "channel-packet"}},
		{filepath.Join("..", "..", "host", "testdata", "golden", "bus-v1.state"), "bus", []string{"bus-connection", "bus-channel", "bus-gpadl"}},
	} {
		var s stateJSON
		if err := json.Unmarshal([]byte(mustCLI(t, "state", "inspect", tc.file, "--json")), &s); err != nil {
			t.Fatal(err)
		}
		if s.Scope != tc.scope {
			t.Fatalf("%s: scope %q", tc.file, s.Scope)
		}
		seen := map[string]bool{}
		for _, r := range s.Records {
			seen[r.Kind] = true
			if _, hex := r.Body.(string); hex {
				t.Errorf("%s: record %d (%s) shown as hex, not decoded", tc.file, r.Seq, r.Kind)
			}
		}
		for _, k := range tc.kinds {
			if !seen[k] {
				t.Errorf("%s: no %s record in %v", tc.file, k, seen)
			}
		}
		out := mustCLI(t, "state", "inspect", tc.file)
		for _, k := range tc.kinds {
			if !strings.Contains(out, k) {
				t.Errorf("%s: text output lacks %s", tc.file, k)
			}
		}
	}
}

// TestStateInspectRanges inspects a channel state whose send queue holds a
// packet with external data (the channel package's golden file): the
// packet's ranges are decoded and printed.
func TestStateInspectRanges(t *testing.T) {
	file := filepath.Join("..", "..", "channel", "testdata", "golden", "channel-external-v1.state")
	var s stateJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "state", "inspect", file, "--json")), &s); err != nil {
		t.Fatal(err)
	}
	var ranges []any
	for _, r := range s.Records {
		body, _ := r.Body.(map[string]any)
		lib, _ := body["library"].(map[string]any)
		if rs, ok := lib["ranges"].([]any); ok && r.Kind == "channel-packet" {
			ranges = append(ranges, rs...)
		}
	}
	if len(ranges) != 2 {
		t.Fatalf("%d ranges decoded, want the GPA-direct packet's 2: %+v", len(ranges), ranges)
	}
	first, _ := ranges[0].(map[string]any)
	if first["ByteCount"] != float64(5000) || first["ByteOffset"] != float64(100) {
		t.Fatalf("first range %+v", first)
	}
	if out := mustCLI(t, "state", "inspect", file); !strings.Contains(out, `"ranges":[{"ByteCount":5000,"ByteOffset":100,"PFNs":[10,11]}`) {
		t.Fatalf("text output lacks the ranges:\n%s", out)
	}
}
