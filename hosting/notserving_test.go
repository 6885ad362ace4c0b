package hosting_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestServiceNotServing: a daemon that has not served yet, or is closed,
// is not serviced: ErrNotServing, and a ServiceTo leaves its successor
// unused (it serves after). Before Serve both panicked (the listener was
// nil), consuming the successor; after Close, Service returned nil and
// ServiceTo said the daemon served on.
func TestServiceNotServing(t *testing.T) {
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if err := d.Service(); !errors.Is(err, hosting.ErrNotServing) {
		t.Fatalf("Service before Serve: %v, want ErrNotServing", err)
	}
	if err := d.ServiceTo(next); !errors.Is(err, hosting.ErrNotServing) {
		t.Fatalf("ServiceTo before Serve: %v, want ErrNotServing", err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := d.Service(); !errors.Is(err, hosting.ErrNotServing) {
		t.Fatalf("Service after Close: %v, want ErrNotServing", err)
	}
	if err := d.ServiceTo(next); !errors.Is(err, hosting.ErrNotServing) {
		t.Fatalf("ServiceTo after Close: %v, want ErrNotServing", err)
	}
	if err := next.Serve(); err != nil {
		t.Fatalf("the successor left unused does not serve: %v", err)
	}
}

// TestNewConfigErrors: every wrong Config value that is not a device's
// wraps ErrConfig; an unknown servicing mode was taken as Exec.
func TestNewConfigErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bus.sock")
	for name, cfg := range map[string]hosting.Config{
		"no socket":        {},
		"servicing mode 7": {Socket: sock, Servicing: 7},
		"negative poll":    {Socket: sock, Poll: -1},
	} {
		if d, err := hosting.New(cfg); !errors.Is(err, hosting.ErrConfig) {
			if d != nil {
				d.Close()
			}
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
