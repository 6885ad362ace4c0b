package hvsock

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestRelayClose: a relayed connection carries bytes both ways; the
// relay's Close, with the connection open and its local end never
// closing, resets both ends and returns once every goroutine is done.
func TestRelayClose(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	path := t.TempDir() + "/local.sock"
	ll, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ll.Close()
	rl, err := r.srv.Relay(Route{Service: svc5000, Network: "unix", Address: path})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	lc, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	lc.SetDeadline(time.Now().Add(testbus.Timeout))
	gc.SetDeadline(time.Now().Add(testbus.Timeout))
	buf := make([]byte, 5)
	if _, err := gc.Write([]byte("guest")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(lc, buf); err != nil || string(buf) != "guest" {
		t.Fatalf("local read %q, %v", buf, err)
	}
	if _, err := lc.Write([]byte("local")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(gc, buf); err != nil || string(buf) != "local" {
		t.Fatalf("guest read %q, %v", buf, err)
	}

	closed := make(chan error, 1)
	go func() { closed <- rl.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testbus.Timeout):
		t.Fatal("Relay.Close did not return with a connection open")
	}
	if n, err := lc.Read(buf); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("local end after Close: %d, %v; want its end", n, err)
	}
	if n, err := gc.Read(buf); err != io.EOF && !errors.Is(err, ErrReset) {
		t.Errorf("guest end after Close: %d, %v; want its end", n, err)
	}
	if err := rl.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
