package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EServicingAddsDevice: a servicing into an upgrade that serves one
// more device (exec and spawn) carries the guests' channels on and offers
// the new device to them. Before, the successor refused a state whose
// devices were not its own: after an exec, or once a spawned successor
// had said it had the handover, every guest was lost.
func TestE2EServicingAddsDevice(t *testing.T) {
	for _, mode := range []string{"exec", "spawn"} {
		t.Run(mode, func(t *testing.T) {
			h, exe, real := upgradableHost(t, "--device", "echo", "--servicing", mode)
			dir := filepath.Dir(exe)
			// A guest streaming across the servicing, on the first echo.
			stream := exec.Command(real, "guest", "--socket", h.socket, "stream", "--count", "4000000", "--payload", "256")
			out, err := os.Create(filepath.Join(dir, "stream.out"))
			if err != nil {
				t.Fatal(err)
			}
			stream.Stdout, stream.Stderr = out, out
			if err := stream.Start(); err != nil {
				t.Fatal(err)
			}
			// The upgrade: one more echo device.
			upgrade(t, exe, "exec "+real+" \"$@\" --device echo")
			time.Sleep(200 * time.Millisecond) // the stream under way
			if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			h.waitMsg(t, "servicing complete")
			if !running(stream.Process.Pid) {
				t.Fatal("the stream ended before the servicing: it did not run across it")
			}
			if err := stream.Wait(); err != nil {
				b, _ := os.ReadFile(out.Name())
				t.Fatalf("stream across the servicing: %v: %s\n%s", err, b, h.logs())
			}
			if !strings.Contains(h.logs(), "device added: offered") {
				t.Errorf("no device added in the log:\n%s", h.logs())
			}
			list, err := exec.Command(real, "guest", "--socket", h.socket, "list", "--json").Output()
			if err != nil {
				t.Fatal(err)
			}
			var offers []offerJSON
			if err := json.Unmarshal(list, &offers); err != nil || len(offers) != 2 {
				t.Fatalf("offers after the upgrade: %s (%v), want two echo devices", list, err)
			}
		})
	}
}
