package hostchaos_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/blk"
	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/internal/guestload"
	"github.com/govmbus/govmbus/internal/hostchaos"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// startHost runs a daemon offering echo, blk (over a file of 1 MiB),
// heartbeat and time sync on socket, shut down when t ends.
func startHost(t *testing.T, socket string) {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := hosting.New(hosting.Config{Socket: socket, Kinds: stdkinds.Registry(), Devices: []string{"echo", "blk=" + disk, "heartbeat", "timesync"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx) //nolint:errcheck // the test judged what it wanted already
	})
}

// useDevices dials socket, runs the integration components' client and
// streams through echo and verifies the disk beside it, every step
// bounded: what a guest does with a host it cannot trust.
func useDevices(ctx context.Context, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: 8 << 20, NegotiateTimeout: time.Second})
	if err != nil {
		return err
	}
	defer cl.Close()
	ics, err := ic.OpenClient(cl, []ic.Service{ic.ServiceHeartbeat, ic.ServiceTimeSync}, ic.ClientConfig{})
	if err != nil {
		return err
	}
	defer ics.Close()
	if err := useEcho(ctx, cl); err != nil {
		return err
	}
	d, err := blk.Open(ctx, cl, blk.ClientConfig{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := guestload.VerifyDisk(d, 256<<10)
	if err != nil {
		return err
	}
	if res.Mismatches > 0 {
		return errors.New("blk: the disk read back what was not written")
	}
	return nil
}

// useEcho streams through an echo channel of cl.
func useEcho(ctx context.Context, cl *guest.Client) error {
	ec, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		return err
	}
	defer ec.Close()
	res, err := ec.Stream(ctx, echo.StreamConfig{Payload: 64, Count: 2000, Idle: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	if res.Lost+res.Duplicated+res.Corrupted > 0 {
		return errors.New("echo: lost, duplicated or corrupted packets")
	}
	return nil
}

// TestRunThenGoodHost serves guests (echo, blk and two integration
// components at once) through a hostile host for a while: each guest's
// work ends, in an error or not, within its bound, and blk never reads
// back what was not written; the run reports what it tried; the same
// process then works normally with the good host behind it; and nothing
// of the run is left (goroutines, descriptors). Ring abuse is left out: guest and hostile host share this
// process, and the race detector would see the hostile host's writes
// into the guest's ring as the race they are.
func TestRunThenGoodHost(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "bus.sock")
	upstream := hostchaos.Upstream(socket, true)
	startHost(t, upstream)
	var kinds []string
	for _, k := range hostchaos.Kinds() {
		if !hostchaos.IsRingAbuse(k) {
			kinds = append(kinds, k)
		}
	}
	ctx := context.Background()
	srv, err := hostchaos.Listen(hostchaos.Config{Socket: socket, Upstream: upstream, Seed: 7, Duration: 3 * time.Second, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	reps := make(chan *hostchaos.Report, 1)
	go func() { reps <- srv.Serve(ctx) }()
	guests, failed := 0, 0
	for stop := time.Now().Add(2500 * time.Millisecond); time.Now().Before(stop); {
		start := time.Now()
		err := useDevices(ctx, socket)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("a guest took %v against the hostile host", d)
		}
		guests++
		if err != nil {
			t.Logf("guest %d: %v", guests, err)
			failed++
		}
	}
	rep := <-reps
	if rep == nil {
		t.FailNow()
	}
	t.Logf("%d guests, %d failed; %d sessions, %d actions", guests, failed, rep.Sessions, len(rep.Actions))
	for _, l := range rep.Log {
		t.Logf("session %d: %v, %d tried, %s", l.Number, l.Armed, l.Tried, l.End)
	}
	if rep.Sessions == 0 || len(rep.Actions) == 0 {
		t.Errorf("the run served %d sessions and tried %d kinds", rep.Sessions, len(rep.Actions))
	}
	if failed == 0 {
		t.Errorf("no guest of %d failed: the host was not hostile", guests)
	}
	if err := useDevices(ctx, upstream); err != nil {
		t.Errorf("after the hostile host, the good one: %v", err)
	}
}
