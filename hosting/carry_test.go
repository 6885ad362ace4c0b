package hosting_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestCarryInProcess: what Config.Carry gives reaches the successor's
// Carried (in this process, the very files), and a Carry that fails, or
// gives a file under a bad name, fails the servicing while the daemon
// serves on.
func TestCarryInProcess(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var carry func() (map[string]*os.File, error)
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"},
		Carry: func() (map[string]*os.File, error) { return carry() }}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	if d.Carried() != nil {
		t.Fatalf("a first daemon carries %v", d.Carried())
	}
	for _, bad := range []func() (map[string]*os.File, error){
		func() (map[string]*os.File, error) { return nil, errors.New("the VMM is busy") },
		func() (map[string]*os.File, error) { return map[string]*os.File{"a,b": r}, nil },
		func() (map[string]*os.File, error) { return map[string]*os.File{"nil": nil}, nil },
	} {
		carry = bad
		next, err := hosting.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.ServiceTo(next); !errors.Is(err, hosting.ErrNotServiced) || !strings.Contains(err.Error(), "Config.Carry") {
			t.Fatalf("ServiceTo with a bad Carry: %v, want ErrNotServiced for Carry", err)
		}
		next.Close()
	}
	carry = func() (map[string]*os.File, error) { return map[string]*os.File{"vm-state": r}, nil }
	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer next.Shutdown(ctx) //nolint:errcheck // the verdict is in
	got := next.Carried()["vm-state"]
	if len(next.Carried()) != 1 || got == nil {
		t.Fatalf("Carried: %v", next.Carried())
	}
	if _, err := w.Write([]byte("vcpus 4")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b, err := io.ReadAll(got); err != nil || string(b) != "vcpus 4" {
		t.Fatalf("the carried pipe read %q, %v", b, err)
	}
}
