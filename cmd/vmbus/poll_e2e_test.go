package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestE2EPoll: ping between a host and a guest that both poll (--poll),
// with its CPU time per round trip; a budget out of range is bad usage
// on either side.
func TestE2EPoll(t *testing.T) {
	dir := t.TempDir()
	socket := startRelayHost(t, dir, "--device", "echo", "--poll", "1ms")
	p := guestJSON(t, socket, "--poll", "1ms", "ping", "--count", "300")
	if p["sent"] != 300 || p["received"] != 300 || p["lost"]+p["corrupted"]+p["duplicated"] != 0 {
		t.Errorf("ping: %v", p)
	}
	if v, ok := p["cpu_per_ping_us"]; !ok || v <= 0 {
		t.Errorf("ping: cpu_per_ping_us %v in %v", v, p)
	}
	bin, none := vmbusBinary(t), filepath.Join(dir, "none")
	for _, args := range [][]string{
		{"guest", "--socket", none, "--poll", "-1us", "ping"},
		{"guest", "--socket", none, "--poll", "2s", "stream", "--payload", "64", "--count", "10"},
		{"host", "--socket", none, "--device", "echo", "--poll", "-1us"},
		{"host", "--socket", none, "--device", "echo", "--poll", "2s"},
	} {
		// A host that took the budget would serve until killed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := exec.CommandContext(ctx, bin, args...).Run()
		cancel()
		if exitCode(err) != 2 {
			t.Errorf("%v: %v, want exit 2", args, err)
		}
	}
}
