package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

// TestStateInspectFormatAndKinds: inspect prints the format and the
// kinds a state uses, a host state's nested ones included.
func TestStateInspectFormatAndKinds(t *testing.T) {
	host := filepath.Join("..", "..", "hosting", "testdata", "golden", "host-3d79281.state")
	out := mustCLI(t, "state", "inspect", host)
	if !strings.Contains(out, "\nformat       1\n") || !strings.Contains(out, "0x0001 channel-info, ") || !strings.Contains(out, "0x0203 host-channel-chunk\n") {
		t.Fatalf("inspect printed:\n%s", out)
	}
	var s stateJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "state", "inspect", "--json", filepath.Join("..", "..", "channel", "testdata", "golden", "channel-restart-v1.state"))), &s); err != nil {
		t.Fatal(err)
	}
	if s.Format != 1 || len(s.Kinds) != 3 || s.Kinds[2] != (kindJSON{Kind: "0x0005", Name: "channel-restart"}) {
		t.Fatalf("format %d, kinds %+v", s.Format, s.Kinds)
	}
}

// TestHostStateKinds: `vmbus host --state-kinds` prints what this build
// reads in the form a servicing parses; --json the same as an object.
func TestHostStateKinds(t *testing.T) {
	got, err := savedstate.ParseSupport([]byte(mustCLI(t, "host", "--state-kinds")))
	if err != nil || !slices.Equal(got.Kinds, savedstate.Supported().Kinds) || !got.ReadsFormat(1) {
		t.Fatalf("%+v, %v", got, err)
	}
	var j struct {
		Formats []uint16   `json:"formats"`
		Kinds   []kindJSON `json:"kinds"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "host", "--state-kinds", "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(j.Formats, []uint16{1}) || !slices.Contains(j.Kinds, kindJSON{Kind: "0x0005", Name: "channel-restart"}) || len(j.Kinds) != len(got.Kinds) {
		t.Fatalf("%+v", j)
	}
	if code, _, _ := cli(t, "host", "--json"); code != 2 {
		t.Fatalf("--json without --state-kinds: exit %d", code)
	}
}
