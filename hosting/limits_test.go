package hosting_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestConfigLimits: Config.Limits reach the host: with MaxGuests 1 a
// second guest is turned away while the first is served.
func TestConfigLimits(t *testing.T) {
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"},
		Limits: host.Limits{MaxGuests: 1}}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer d.Shutdown(ctx) //nolint:errcheck // the verdict is in
	first, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.RequestOffers(ctx); err != nil {
		t.Fatalf("first guest: %v", err)
	}
	second, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 1 << 20})
	if err == nil {
		_, err = second.RequestOffers(ctx)
		second.Close()
	}
	if err == nil || ctx.Err() != nil {
		t.Fatalf("second guest beyond MaxGuests 1: %v (context %v)", err, ctx.Err())
	}
}
