package admin

import (
	"context"
	"errors"
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
