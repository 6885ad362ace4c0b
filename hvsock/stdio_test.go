package hvsock

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestStdioExecWaits: `hvsock listen --exec` returns only once the
// commands it started have ended, not as soon as its listener fails.
// The command lets go of its connection at once (its stdout's end is the
// guest's FIN) and outlives it by a moment (it sleeps, then marks a
// file): Run's return must find the mark.
func TestStdioExecWaits(t *testing.T) {
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	mark := filepath.Join(t.TempDir(), "done")
	s := Stdio{Listen: true, Service: svc5000, Exec: "exec </dev/null >/dev/null; sleep 0.5; echo done > " + mark}
	ran := make(chan error, 1)
	go func() { ran <- s.Run(r.Client) }()
	var c *Conn
	for deadline := time.Now().Add(testbus.Timeout); c == nil; {
		var err error
		if c, err = r.srv.Dial(testbus.Context(t), r.Guest, svc5000); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("dial the guest's listener: %v", err)
			}
			time.Sleep(10 * time.Millisecond) // the listener is not up yet: a refusal
		}
	}
	// The guest's FIN: the command's stdout ended, and the guest
	// writes nothing more to its ring.
	c.SetReadDeadline(time.Now().Add(testbus.Timeout))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read the guest's end: %d, %v", n, err)
	}
	// The host's FIN and rescind reach the guest's connection (its
	// Splice ends; the command lives on), then the bus goes: the
	// listener fails.
	c.Close()
	select {
	case <-c.down:
	case <-time.After(testbus.Timeout):
		t.Fatal("the host's end did not go down")
	}
	r.Client.Close()
	select {
	case <-ran:
	case <-time.After(testbus.Timeout):
		t.Fatal("Run did not return once its listener failed")
	}
	if b, err := os.ReadFile(mark); err != nil || string(b) != "done\n" {
		t.Fatalf("Run returned before its command ended: %q, %v", b, err)
	}
}
