package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/chaos"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// serveEcho runs a host in this process that offers every guest an echo
// server, as `vmbus host --device echo` does, and returns its socket.
func serveEcho(t *testing.T) (string, *host.Host) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the host's close, which ends every guest
	h := testbus.NewServed(t, host.Config{OnGuest: func(g *host.Guest) {
		s, err := echo.NewServer(g, echo.ServerConfig{})
		if err != nil {
			t.Errorf("echo server: %v", err)
			return
		}
		wg.Go(func() {
			<-g.Done()
			s.Close()
		})
	}})
	return h.Listen(t), h.Host
}

func TestRunAgainstHost(t *testing.T) {
	leakcheck.Check(t)
	socket, h := serveEcho(t)
	rep, err := chaos.Run(context.Background(), chaos.Config{Socket: socket, Seed: 7, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sessions == 0 || len(rep.Actions) < 5 {
		t.Fatalf("a run that tried little: %d sessions, %d kinds of action", rep.Sessions, len(rep.Actions))
	}
	total := 0
	for _, a := range rep.Actions {
		n := 0
		for _, c := range a.Outcomes {
			n += c
		}
		if n != a.Tried || a.Tried == 0 {
			t.Errorf("%s: tried %d, outcomes %v", a.Kind, a.Tried, a.Outcomes)
		}
		total += a.Tried
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "seed 7") {
		t.Errorf("text report %q: %v", text.String(), err)
	}
	t.Logf("%s", text.String())
	if total < 15 {
		t.Errorf("%d actions in 3 s", total)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}

	// The host serves a well-behaved guest afterwards, and the chaos
	// guests are all gone.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ec, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	res, err := ec.Ping(ctx, 10, 64, time.Second)
	if err != nil || res.Received != 10 {
		t.Fatalf("ping after chaos: %+v, %v", res, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.NumGuests() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.NumGuests(); n != 1 {
		t.Errorf("%d guests connected after the run, want the 1 well-behaved", n)
	}
}

func TestRunCannotConnect(t *testing.T) {
	_, err := chaos.Run(context.Background(), chaos.Config{Socket: filepath.Join(t.TempDir(), "none"), Seed: 1, Duration: time.Second})
	if !errors.Is(err, chaos.ErrConnect) {
		t.Fatalf("run without a host: %v, want ErrConnect", err)
	}
}
