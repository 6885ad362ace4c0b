package hosting_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
)

// TestServeFile: a daemon serves on a listening socket the program made
// (as systemd's socket activation hands one over), guests reach it at
// its path, and with KeepSocket the daemon leaves the path to its owner
// when it stops. A
// file that is no SOCK_SEQPACKET listener is refused.
func TestServeFile(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "bus.sock")
	ul, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: socket, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	f, err := ul.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := hosting.Config{Socket: socket, KeepSocket: true, Kinds: stdkinds.Registry(), Devices: []string{"echo"}}

	stream := filepath.Join(t.TempDir(), "stream.sock")
	sl, err := net.ListenUnix("unix", &net.UnixAddr{Name: stream, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	sf, err := sl.File()
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	bad, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.ServeFile(sf); err == nil {
		t.Fatal("a SOCK_STREAM listener was taken")
	}
	bad.Close()

	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ServeFile(f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := guest.Dial(ctx, socket, guest.Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c, err := echo.Open(ctx, cl, echo.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Ping(ctx, 5, 64, 10*time.Second); err != nil || r.Received != 5 {
		t.Fatalf("ping: %+v, %v", r, err)
	}
	c.Close()
	cl.Close()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(socket); err != nil {
		t.Fatalf("the owner's socket path after Shutdown: %v", err)
	}
}
