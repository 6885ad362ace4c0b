package hosting_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestNewChecksStateFile: a state file that cannot be written is bad
// configuration at New, not a failed servicing later; one that can is
// taken, and New leaves nothing beside it.
func TestNewChecksStateFile(t *testing.T) {
	dir := t.TempDir()
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}}
	for _, bad := range []string{filepath.Join(dir, "missing", "state"), dir} {
		c := cfg
		c.StateFile = bad
		if d, err := hosting.New(c); !errors.Is(err, hosting.ErrConfig) {
			if d != nil {
				d.Close()
			}
			t.Errorf("StateFile %s: %v, want ErrConfig", bad, err)
		}
	}
	cfg.StateFile = filepath.Join(dir, "state")
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatalf("StateFile %s: %v", cfg.StateFile, err)
	}
	d.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("New left %v in the state file's directory", ents)
	}
}
