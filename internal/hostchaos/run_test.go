package hostchaos_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/internal/hostchaos"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// startHost runs a daemon offering two echo channels on socket, shut down
// when t ends.
func startHost(t *testing.T, socket string) {
	t.Helper()
	d, err := hosting.New(hosting.Config{Socket: socket, Kinds: stdkinds.Registry(), Devices: []string{"echo", "echo"}})
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

// useEcho dials socket and streams through an echo channel, every step
// bounded: what a guest does with a host it cannot trust.
func useEcho(ctx context.Context, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		return err
	}
	defer cl.Close()
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

// TestRunThenGoodHost serves guests through a hostile host for a while:
// each guest's work ends, in an error or not, within its bound; the run
// reports what it tried; the same process then works normally with the
// good host behind it; and nothing of the run is left (goroutines,
// descriptors). Ring abuse is left out: guest and hostile host share this
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
		err := useEcho(ctx, socket)
		if d := time.Since(start); d > 8*time.Second {
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
	if err := useEcho(ctx, upstream); err != nil {
		t.Errorf("after the hostile host, the good one: %v", err)
	}
}
