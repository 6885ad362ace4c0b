package hosting_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestServiceToRefusesOtherDevices: a successor in this process that
// would serve other devices is refused in the pre-flight, before anything
// pauses, ServiceTo says so (ErrNotServiced), and the daemon serves on: a
// guest pings its echo device after.
func TestServiceToRefusesOtherDevices(t *testing.T) {
	var events []hosting.Event
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"},
		Events: func(e hosting.Event) { events = append(events, e) }}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Devices = []string{"echo", "echo"}
	next, err := hosting.New(other)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if err := d.ServiceTo(next); !errors.Is(err, hosting.ErrNotServiced) || !strings.Contains(err.Error(), "preflight") {
		t.Fatalf("ServiceTo into other devices: %v, want ErrNotServiced at the pre-flight", err)
	}
	f, ok := events[len(events)-1].(*hosting.ServicingFailed)
	if !ok || f.Stage != "preflight" || !strings.Contains(f.Err.Error(), `devices ["echo" "echo"]`) {
		t.Fatalf("events %v", events)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Ping(ctx, 10, 64, 10*time.Second); err != nil || r.Received != 10 {
		t.Fatalf("ping after the refusal: %+v, %v", r, err)
	}
	c.Close()
	cl.Close()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
