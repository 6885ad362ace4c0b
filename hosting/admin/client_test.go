package admin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClientNoHost: a socket nobody listens on is reported as such, with
// its path and the cause, once the reconnect window has passed, not after
// the caller's whole wait and not as the caller's deadline.
func TestClientNoHost(t *testing.T) {
	old := reconnectFor
	reconnectFor = 200 * time.Millisecond
	defer func() { reconnectFor = old }()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := NewClient(path).Do(ctx, "GET", "/v1/guests", nil, nil)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v to give up", took)
	}
	if err == nil || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), path) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one naming %s with ENOENT", err, path)
	}
}

// TestClientNoSocketAtOnce: a path that is missing or is no socket has no
// host behind it whatever a servicing does, so the client says so at once
// instead of trying again for reconnectFor; a socket that refuses (a
// successor about to listen) is tried again for the window.
func TestClientNoSocketAtOnce(t *testing.T) {
	old := reconnectFor
	reconnectFor = 2 * time.Second
	defer func() { reconnectFor = old }()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refusing := filepath.Join(dir, "refusing.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: refusing, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		path  string
		retry bool
	}{{filepath.Join(dir, "missing"), false}, {file, false}, {dir, false}, {refusing, true}} {
		start := time.Now()
		err := NewClient(tc.path).Do(ctx, "GET", "/v1/guests", nil, nil)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "no host answers on") {
			t.Errorf("%s: %v", tc.path, err)
		}
		if tc.retry != (took >= reconnectFor) {
			t.Errorf("%s: gave up after %v (retry %v, window %v)", tc.path, took, tc.retry, reconnectFor)
		}
	}
}
