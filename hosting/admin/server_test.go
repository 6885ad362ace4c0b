package admin

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govmbus/govmbus/hosting"
)

type noDevices struct{}

func (noDevices) Devices() []hosting.DeviceInfo { return nil }

func listen(t *testing.T, path string) *Server {
	t.Helper()
	return listenAs(t, Config{Path: path, Source: noDevices{}})
}

// listenAs is listen with cfg.
func listenAs(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func status(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// TestSocketMode: the socket is created 0600, serves its owner, and
// answers 404 with the reason for an unknown guest.
func TestSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	listen(t, path)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket of 0600", st.Mode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := NewClient(path)
	var gs []Guest
	if err := c.Do(ctx, "GET", "/v1/guests", nil, &gs); err != nil || len(gs) != 0 {
		t.Fatalf("guests: %v, %v", gs, err)
	}
	err = c.Do(ctx, "POST", "/v1/guests/7/heartbeat", nil, nil)
	if status(err) != http.StatusNotFound || err.Error() != "no guest 7" {
		t.Fatalf("unknown guest: %v", err)
	}
	err = c.Do(ctx, "GET", "/v1/guests/x/kvp/0", nil, nil)
	if status(err) != http.StatusBadRequest {
		t.Fatalf("guest x: %v", err)
	}
}

// TestOtherUIDRefused: a peer whose SO_PEERCRED uid is not the server's
// is refused (403) before any endpoint runs. The server's uid stands in
// for another user's: the test runs as one.
func TestOtherUIDRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	s := listen(t, path)
	s.uid = os.Getuid() + 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := NewClient(path).Do(ctx, "GET", "/v1/guests", nil, nil)
	if status(err) != http.StatusForbidden {
		t.Fatalf("another uid's request: %v, want 403", err)
	}
}

// TestCloseKeepsSuccessorSocket: a server that a successor replaced on
// the same path (a spawned servicing) leaves the successor's socket when
// it closes; the successor's own Close removes it.
func TestCloseKeepsSuccessorSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	old := listen(t, path)
	if _, err := Listen(Config{Path: path, Source: noDevices{}}); err == nil {
		t.Fatal("a second server took a socket that answers, without Successor")
	}
	next := listenAs(t, Config{Path: path, Source: noDevices{}, Successor: true})
	old.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := NewClient(path).Do(ctx, "GET", "/v1/guests", nil, nil); err != nil {
		t.Fatalf("the successor's socket after its predecessor's Close: %v", err)
	}
	next.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}
