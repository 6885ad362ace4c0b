package hosting_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/internal/sockpath"
)

// TestConnectPaths: the connect relays' socket paths (Config.Connects)
// as a start finds them and leaves them. A Serve that fails after one was
// bound removes it, so that the next start is not refused for it (before,
// the path stayed and the next start failed with "address already in
// use"); a socket a dead host left is replaced; a path given twice, or
// the bus socket's, is refused at New; a file that is not a socket is
// refused and kept.
func TestConnectPaths(t *testing.T) {
	dir := t.TempDir()
	bus := filepath.Join(dir, "bus.sock")
	c5 := filepath.Join(dir, "c5.sock")
	cfg := func(connects ...string) hosting.Config {
		return hosting.Config{Socket: bus, Kinds: stdkinds.Registry(), Devices: []string{"echo"}, Connects: connects}
	}
	serve := func(c hosting.Config) (*hosting.Daemon, error) {
		t.Helper()
		d, err := hosting.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return d, d.Serve()
	}

	if _, err := serve(cfg("unix:"+c5+"=6000", "unix:"+filepath.Join(dir, "none", "x")+"=6001")); err == nil {
		t.Fatal("a connect path in a missing directory served")
	}
	for _, p := range []string{c5, bus} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the failed Serve: %v, want it gone", p, err)
		}
	}

	// A socket nobody listens on, as a host killed outright leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: c5, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	d, err := serve(cfg("unix:" + c5 + "=6000"))
	if err != nil {
		t.Fatalf("a stale connect socket: %v", err)
	}
	d.Close()

	for _, c := range [][]string{{"unix:" + c5 + "=6000", "unix:" + c5 + "=6001"}, {"unix:" + bus + "=6000"}} {
		if _, err := hosting.New(cfg(c...)); !errors.Is(err, hosting.ErrDevice) {
			t.Errorf("connects %v: %v, want ErrDevice", c, err)
		}
	}

	regular := filepath.Join(dir, "precious")
	if err := os.WriteFile(regular, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := serve(cfg("unix:" + regular + "=6000")); !errors.Is(err, sockpath.ErrNotSocket) {
		t.Errorf("a regular file as a connect path: %v, want ErrNotSocket", err)
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "keep" {
		t.Errorf("the regular file: %q, %v", b, err)
	}
}
