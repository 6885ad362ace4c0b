package hosting_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/protocol"
)

// guestIDs is the ids of the guests d serves devices to, in order.
func guestIDs(d *hosting.Daemon) []uint64 {
	var ids []uint64
	for _, c := range d.Channels() {
		if !slices.Contains(ids, c.Guest) {
			ids = append(ids, c.Guest)
		}
	}
	slices.Sort(ids)
	return ids
}

// waitGuestIDs waits until d serves n guests, and returns their ids.
func waitGuestIDs(t *testing.T, d *hosting.Daemon, n int) []uint64 {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ids := guestIDs(d)
		if len(ids) == n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("guests %v, want %d of them", ids, n)
		}
	}
}

// TestServiceToKeepsGuestIDs: the successor numbers the guests as its
// predecessor did, so that `vmbus admin kvp 3 …` reaches the same guest
// after a servicing as before it, even when a guest before it left; a
// guest that comes after gets a number above them all. Before, the
// successor numbered them 1, 2, … again, and guest 3's number named
// another guest. With -update, the state the servicing wrote becomes the
// golden host-guest-id-v1.state.
func TestServiceToKeepsGuestIDs(t *testing.T) {
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "host.state")
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}, StateFile: stateFile}
	d, first, ctx := serveGuest(t, cfg, 30*time.Second)
	dial := func() *guest.Client {
		cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		if _, err := cl.WaitOffer(ctx, echo.InterfaceType, protocol.GUID{}); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	dial()
	dial()
	waitGuestIDs(t, d, 3)
	first.Close()
	want := waitGuestIDs(t, d, 2)
	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	if got := waitGuestIDs(t, next, 2); !slices.Equal(got, want) {
		t.Fatalf("guest ids after the servicing %v, want %v", got, want)
	}
	dial()
	if got := waitGuestIDs(t, next, 3); got[2] <= want[1] {
		t.Fatalf("a guest after the servicing: ids %v, want one above %v", got, want)
	}
	if *update {
		state, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "golden", "host-guest-id-v1.state"), state, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := next.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
