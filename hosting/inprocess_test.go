package hosting_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/protocol"
)

// TestServiceToChangesDevices: a successor may serve other devices than
// its predecessor (an upgrade). Devices are matched to the saved ones by
// value, not by place: one it adds is offered anew to the guests, one it
// drops is rescinded, and the others carry on. A successor on another socket is
// refused in the pre-flight (ErrNotServiced) and the daemon serves on.
func TestServiceToChangesDevices(t *testing.T) {
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}}
	d, cl, ctx := serveGuest(t, cfg, 20*time.Second)
	inst := func(n byte) protocol.GUID { return protocol.GUID{15: n} }
	first, err := echo.Open(ctx, cl, echo.ClientConfig{Instance: inst(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	ping := func(c *echo.Client, when string) {
		t.Helper()
		if r, err := c.Ping(ctx, 5, 64, 10*time.Second); err != nil || r.Received != 5 {
			t.Fatalf("ping %s: %+v, %v", when, r, err)
		}
	}
	ping(first, "before")

	elsewhere := cfg
	elsewhere.Socket = filepath.Join(t.TempDir(), "other.sock")
	other, err := hosting.New(elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServiceTo(other); !errors.Is(err, hosting.ErrNotServiced) || !strings.Contains(err.Error(), "preflight") {
		t.Fatalf("ServiceTo on another socket: %v, want ErrNotServiced at the pre-flight", err)
	}
	other.Close()
	ping(first, "after the refusal")

	// An upgrade that adds an echo device.
	added := cfg
	added.Devices = []string{"echo", "echo"}
	next, err := hosting.New(added)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	ping(first, "after the device was added")
	second, err := echo.Open(ctx, cl, echo.ClientConfig{Instance: inst(2)})
	if err != nil {
		t.Fatalf("the added device: %v", err)
	}
	defer second.Close()
	ping(second, "on the added device")

	// And one that drops it again.
	dropped, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.ServiceTo(dropped); err != nil {
		t.Fatal(err)
	}
	ping(first, "after the device was dropped")
	if r, err := second.Ping(ctx, 1, 64, 2*time.Second); err == nil {
		t.Fatalf("the dropped device still answers: %+v", r)
	}

	// And one that puts another device before it: matched by value,
	// not by place.
	before := cfg
	before.Devices = []string{"heartbeat", "echo"}
	last, err := hosting.New(before)
	if err != nil {
		t.Fatal(err)
	}
	if err := dropped.ServiceTo(last); err != nil {
		t.Fatal(err)
	}
	defer last.Shutdown(ctx) //nolint:errcheck // the verdict is in
	ping(first, "after a device was put before it")
}
