package hosting_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestOnGuest: Config.OnGuest hears of a new guest once its devices are
// offered, and a successor's of the same guest (same id) once it is
// restored; Done closes when the guest goes.
func TestOnGuest(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]*host.Guest{}
	onGuest := func(who string) func(*host.Guest) {
		return func(g *host.Guest) { mu.Lock(); seen[who] = append(seen[who], g); mu.Unlock() }
	}
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}, OnGuest: onGuest("first")}
	d, cl, ctx := serveGuest(t, cfg, 20*time.Second)
	c, err := echo.Open(ctx, cl, echo.ClientConfig{}) // offered, so OnGuest has run
	if err != nil {
		t.Fatal(err)
	}
	second := cfg
	second.OnGuest = onGuest("second")
	next, err := hosting.New(second)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	defer next.Shutdown(ctx) //nolint:errcheck // the verdict is in
	if r, err := c.Ping(ctx, 3, 64, 10*time.Second); err != nil || r.Received != 3 {
		t.Fatalf("ping after the servicing: %+v, %v", r, err)
	}
	mu.Lock()
	first, restored := seen["first"], seen["second"]
	mu.Unlock()
	if len(first) != 1 || len(restored) != 1 || first[0].ID() != restored[0].ID() {
		t.Fatalf("OnGuest: first daemon %v, successor %v; want the same guest once each", first, restored)
	}
	c.Close()
	cl.Close()
	select {
	case <-restored[0].Done():
	case <-ctx.Done():
		t.Fatal("Done did not close after the guest left")
	}
}
