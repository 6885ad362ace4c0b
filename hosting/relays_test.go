package hosting_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/hvsock"
)

// TestServiceToCarriesRelayedConn: a servicing into a daemon in this
// process carries a relayed hvsock connection: the old daemon's close of
// its relays tells neither end anything (no FIN, no reset), and the same
// connection goes on through the new daemon's relay, both ways, to its
// orderly end.
func TestServiceToCarriesRelayedConn(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local.sock")
	ll, err := net.Listen("unix", local)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	var events []hosting.Event
	cfg := hosting.Config{Socket: filepath.Join(dir, "bus.sock"), Kinds: stdkinds.Registry(), Relays: []string{"5000=unix:" + local},
		Events: func(e hosting.Event) { events = append(events, e) }}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, cfg.Socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gc, err := hvsock.DialContext(ctx, cl, hvsock.ServiceForPort(5000))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	lc, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	deadline := time.Now().Add(30 * time.Second)
	gc.SetDeadline(deadline)
	lc.SetDeadline(deadline)
	exchange := func(up, down string) {
		t.Helper()
		if _, err := gc.Write([]byte(up)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, len(up))
		if _, err := io.ReadFull(lc, b); err != nil || string(b) != up {
			t.Fatalf("the local end read %q, %v; want %q", b, err, up)
		}
		if _, err := lc.Write([]byte(down)); err != nil {
			t.Fatal(err)
		}
		b = make([]byte, len(down))
		if _, err := io.ReadFull(gc, b); err != nil || string(b) != down {
			t.Fatalf("the guest read %q, %v; want %q", b, err, down)
		}
	}
	exchange("before", "BEFORE")
	serviced := make(chan error, 1)
	go func() { serviced <- d.ServiceTo(next) }()
	select {
	case err := <-serviced:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ServiceTo did not return")
	}
	if c, ok := events[len(events)-1].(*hosting.ServicingComplete); !ok {
		t.Fatalf("events %v", events)
	} else if c.Channels != 0 {
		t.Logf("%d device channels", c.Channels)
	}
	exchange("after", "AFTER")
	if err := gc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(lc); err != nil || len(b) != 0 {
		t.Fatalf("the local end after the guest's FIN: %q, %v", b, err)
	}
	lc.(*net.UnixConn).CloseWrite()
	if b, err := io.ReadAll(gc); err != nil || len(b) != 0 {
		t.Fatalf("the guest after the local end's: %q, %v", b, err)
	}
	if err := next.Shutdown(ctx); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Fatal(err)
	}
}
