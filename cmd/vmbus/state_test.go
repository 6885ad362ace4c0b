package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateInspect(t *testing.T) {
	golden := filepath.Join("..", "..", "savedstate", "testdata", "golden", "v1-container.state")
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
