package admin

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHostInfo: GET /v1/host names this process and, with
// Config.Servicings, the servicings and the last blackout it reports;
// without it, none.
func TestHostInfo(t *testing.T) {
	dir := t.TempDir()
	with, without := filepath.Join(dir, "with.sock"), filepath.Join(dir, "without.sock")
	s, err := Listen(Config{Path: with, Source: noDevices{}, Servicings: func() (uint32, time.Duration) { return 3, 1500 * time.Microsecond }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	listen(t, without)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var h HostInfo
	if err := NewClient(with).Do(ctx, "GET", "/v1/host", nil, &h); err != nil {
		t.Fatal(err)
	}
	if h.Pid != os.Getpid() || h.Servicings != 3 || time.Duration(h.LastBlackout) != 1500*time.Microsecond {
		t.Fatalf("host %+v, want pid %d, 3 servicings, last blackout 1.5ms", h, os.Getpid())
	}
	h = HostInfo{}
	if err := NewClient(without).Do(ctx, "GET", "/v1/host", nil, &h); err != nil {
		t.Fatal(err)
	}
	if h.Pid != os.Getpid() || h.Servicings != 0 || h.LastBlackout != 0 {
		t.Fatalf("host without servicings %+v", h)
	}
}
