package hosting_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestServeChecksStateFile: a state file that cannot be written is bad
// configuration when a first image starts serving, not a failed servicing
// later; one that can is taken, and Serve leaves nothing beside it. New
// does not look: a successor's (Adopt) must not fail on it.
func TestServeChecksStateFile(t *testing.T) {
	dir := t.TempDir()
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}}
	for _, bad := range []string{filepath.Join(dir, "missing", "state"), dir} {
		c := cfg
		c.StateFile = bad
		d, err := hosting.New(c)
		if err != nil {
			t.Fatalf("New with StateFile %s: %v", bad, err)
		}
		if err := d.Serve(); !errors.Is(err, hosting.ErrConfig) {
			t.Errorf("Serve with StateFile %s: %v, want ErrConfig", bad, err)
		}
		d.Close()
		if _, err := os.Lstat(cfg.Socket); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("StateFile %s: the socket is there (%v)", bad, err)
		}
	}
	cfg.StateFile = filepath.Join(dir, "state")
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatalf("Serve with StateFile %s: %v", cfg.StateFile, err)
	}
	d.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Serve left %v in the state file's directory", ents)
	}
}

// TestServeOnce: a second Serve of a daemon says that a daemon serves
// once, not that some process listens on its socket (itself).
func TestServeOnce(t *testing.T) {
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err == nil || !strings.Contains(err.Error(), "has served already") {
		t.Fatalf("second Serve: %v", err)
	}
}
