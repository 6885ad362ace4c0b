package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/ic"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/hosting"
	"github.com/govmbus/govmbus/hosting/stdkinds"
	"github.com/govmbus/govmbus/internal/testbus"
)

// oneDevice is a Source of one guest's one device.
type oneDevice hosting.DeviceInfo

func (d oneDevice) Devices() []hosting.DeviceInfo { return []hosting.DeviceInfo{hosting.DeviceInfo(d)} }

// TestServicingPause: a servicing's start (Observe) cancels a request
// waiting for its guest, which answers 503 before Observe returns (a
// shutdown: not to be sent again, the guest may have it); until the
// servicing fails, the server answers 503 with Retry, and Client sends
// the request again until it is answered.
func TestServicingPause(t *testing.T) {
	var sd *ic.ShutdownServer
	bus := testbus.New(t, testbus.Config{Host: host.Config{OnGuest: func(g *host.Guest) {
		var err error
		if sd, err = ic.NewShutdownServer(g, ic.Config{}); err != nil {
			t.Error(err)
		}
	}}})
	if sd == nil {
		t.FailNow()
	}
	t.Cleanup(func() { sd.Close() })
	asked, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	c, err := ic.OpenClient(bus.Client, []ic.Service{ic.ServiceShutdown}, ic.ClientConfig{OnShutdown: func(context.Context, *ic.Shutdown) error {
		asked <- struct{}{}
		<-release
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	path := filepath.Join(t.TempDir(), "admin.sock")
	s := listenAs(t, Config{Path: path, Source: oneDevice{Guest: bus.Guest.ID(), Device: "shutdown", Server: sd}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := NewClient(path)
	shut := make(chan error, 1)
	go func() {
		shut <- cl.Do(ctx, "POST", "/v1/guests/"+itoa(bus.Guest.ID())+"/shutdown", ShutdownRequest{}, nil)
	}()
	select {
	case <-asked:
	case err := <-shut:
		t.Fatalf("shutdown answered before the guest had it: %v", err)
	case <-ctx.Done():
		t.Fatal("the guest got no shutdown request")
	}
	s.Observe(&hosting.ServicingStarted{Servicing: 1, Mode: "exec"})
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if running != 0 {
		t.Fatalf("Observe returned with %d requests unanswered", running)
	}
	var se *StatusError
	if err := <-shut; !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || se.Retry || !strings.Contains(se.Reason, "began a servicing") {
		t.Fatalf("shutdown cut off by a servicing: %v", err)
	}

	// Paused: one try is refused with Retry; Do tries again until the
	// servicing fails and the server serves on.
	err = cl.do(ctx, "GET", "/v1/guests", nil, nil)
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !se.Retry {
		t.Fatalf("a request during a servicing: %v", err)
	}
	got := make(chan error, 1)
	var gs []Guest
	go func() { got <- cl.Do(ctx, "GET", "/v1/guests", nil, &gs) }()
	select {
	case err := <-got:
		t.Fatalf("answered during the servicing: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	s.Observe(&hosting.ServicingFailed{Stage: "spawn", Err: errors.New("no successor")})
	if err := <-got; err != nil || len(gs) != 1 {
		t.Fatalf("after the servicing failed: %v, %v", gs, err)
	}
}

// blockedSource is a Source whose Devices waits until released.
type blockedSource struct{ entered, release chan struct{} }

func (b blockedSource) Devices() []hosting.DeviceInfo {
	b.entered <- struct{}{}
	<-b.release
	return nil
}

// TestServicingDrains: a request that does not wait for a guest (and so
// is not cancelled) is answered before a servicing's start returns; one
// that takes longer than drainWait does not hold the servicing.
func TestServicingDrains(t *testing.T) {
	src := blockedSource{entered: make(chan struct{}, 2), release: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "admin.sock")
	s := listenAs(t, Config{Path: path, Source: src})
	t.Cleanup(func() { close(src.release) }) // before the server's Close, which waits for the requests
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := NewClient(path)
	got := make(chan error, 1)
	go func() { got <- cl.Do(ctx, "GET", "/v1/guests", nil, nil) }()
	<-src.entered
	observed := make(chan struct{})
	go func() {
		s.Observe(&hosting.ServicingStarted{Servicing: 1, Mode: "spawn"})
		close(observed)
	}()
	select {
	case <-observed:
		t.Fatal("Observe returned while a request ran")
	case <-time.After(100 * time.Millisecond):
	}
	src.release <- struct{}{}
	<-observed
	if err := <-got; err != nil {
		t.Fatalf("the request running as the servicing began: %v", err)
	}
	s.Observe(&hosting.ServicingComplete{Servicing: 1})

	defer func(d time.Duration) { drainWait = d }(drainWait)
	drainWait = 50 * time.Millisecond
	go func() { got <- cl.Do(ctx, "GET", "/v1/guests", nil, nil) }()
	<-src.entered
	start := time.Now()
	s.Observe(&hosting.ServicingStarted{Servicing: 2, Mode: "spawn"})
	if d := time.Since(start); d < drainWait || d > 10*time.Second {
		t.Errorf("Observe took %v with a request that did not end, want about %v", d, drainWait)
	}
	src.release <- struct{}{}
	<-got
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestServicingSubscribed: a server of a hosting.Daemon takes the
// daemon's events by itself: after a servicing to a successor in the
// same process it stays paused (503 with Retry), and a servicing the
// pre-flight refused resumes it.
func TestServicingSubscribed(t *testing.T) {
	cfg := hosting.Config{Socket: filepath.Join(t.TempDir(), "bus.sock"), Kinds: stdkinds.Registry(), Devices: []string{"echo"}}
	d, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Serve(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	path := filepath.Join(t.TempDir(), "admin.sock")
	listenAs(t, Config{Path: path, Source: d})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := NewClient(path)

	elsewhere := cfg
	elsewhere.Socket = filepath.Join(t.TempDir(), "other.sock")
	other, err := hosting.New(elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := d.ServiceTo(other); !errors.Is(err, hosting.ErrNotServiced) {
		t.Fatalf("ServiceTo on another socket: %v", err)
	}
	if err := cl.do(ctx, "GET", "/v1/host", nil, nil); err != nil {
		t.Fatalf("after a refused servicing: %v", err)
	}

	next, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if err := d.ServiceTo(next); err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	if err := cl.do(ctx, "GET", "/v1/host", nil, nil); !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !se.Retry {
		t.Fatalf("after a servicing to another daemon: %v", err)
	}
}

// TestUnanswered: the ends of a connection a servicing's handover makes,
// as the HTTP client reports them, are unanswered requests; other errors
// are not. A request whose write met the closed socket (EPIPE) was one
// in CI.
func TestUnanswered(t *testing.T) {
	op := func(name string, err error) error {
		return &net.OpError{Op: name, Net: "unix", Err: os.NewSyscallError(name, err)}
	}
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, op("read", syscall.ECONNRESET), op("write", syscall.EPIPE), fmt.Errorf("readLoopPeekFailLocked: %w", op("read", syscall.ECONNRESET))} {
		if !unanswered(err) {
			t.Errorf("%v: not taken for unanswered", err)
		}
	}
	for _, err := range []error{op("dial", syscall.ECONNREFUSED), context.DeadlineExceeded, &StatusError{Code: 503}} {
		if unanswered(err) {
			t.Errorf("%v: taken for unanswered", err)
		}
	}
}
