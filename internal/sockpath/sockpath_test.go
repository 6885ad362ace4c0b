package sockpath

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// stale leaves a socket at path with nobody listening, as a process
// killed outright does.
func stale(t *testing.T, path, network string) {
	t.Helper()
	l, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

func TestClaim(t *testing.T) {
	dir := t.TempDir()
	if err := Claim(filepath.Join(dir, "absent"), "unix"); err != nil {
		t.Errorf("absent path: %v", err)
	}

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep me"), 0o600)
	if err := Claim(file, "unix"); !errors.Is(err, ErrNotSocket) {
		t.Errorf("regular file: %v, want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("the regular file was touched: %q", b)
	}
	if err := Claim(dir, "unix"); !errors.Is(err, ErrNotSocket) {
		t.Errorf("directory: %v, want ErrNotSocket", err)
	}

	for _, network := range []string{"unix", "unixpacket"} {
		old := filepath.Join(dir, "stale-"+network)
		stale(t, old, network)
		if err := Claim(old, network); err != nil {
			t.Errorf("%s: stale socket: %v", network, err)
		}
		if _, err := os.Lstat(old); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the stale socket is still there (%v)", network, err)
		}
		l, err := net.ListenUnix(network, &net.UnixAddr{Name: old, Net: network})
		if err != nil {
			t.Fatalf("%s: bind after Claim: %v", network, err)
		}
		l.Close()
	}

	live := filepath.Join(dir, "live")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: live, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := Claim(live, "unixpacket"); !errors.Is(err, ErrInUse) {
		t.Errorf("live socket: %v, want ErrInUse", err)
	}
	if err := Claim(live, "unix"); !errors.Is(err, ErrInUse) {
		t.Errorf("live socket of the other type: %v, want ErrInUse", err)
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("the live socket was removed: %v", err)
	}
}
