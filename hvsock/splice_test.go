package hvsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/testbus"
)

// unixPair is two connected Unix stream sockets.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: t.TempDir() + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestSpliceHalfClose: each side's end is passed on as the other side's
// CloseWrite while the other direction goes on, and Splice returns nil
// once both have ended.
func TestSpliceHalfClose(t *testing.T) {
	x, a := unixPair(t)
	b, y := unixPair(t)
	done := make(chan error, 1)
	go func() { done <- Splice(a, b) }()
	msg := bytes.Repeat([]byte("relay"), 50000)
	if _, err := x.Write(msg); err != nil {
		t.Fatal(err)
	}
	x.CloseWrite()
	// A generous bound: without the passed-on CloseWrite, y's ReadAll
	// would not end.
	y.SetReadDeadline(time.Now().Add(testbus.Timeout))
	x.SetReadDeadline(time.Now().Add(testbus.Timeout))
	got, err := io.ReadAll(y)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("x to y: %d bytes, %v; want %d", len(got), err, len(msg))
	}
	if _, err := y.Write([]byte("answer after the half-close")); err != nil {
		t.Fatal(err)
	}
	y.CloseWrite()
	back, err := io.ReadAll(x)
	if err != nil || string(back) != "answer after the half-close" {
		t.Fatalf("y to x: %q, %v", back, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Splice: %v", err)
	}
}

// failing is a HalfConn whose Read fails.
type failing struct{ HalfConn }

var errBroken = errors.New("broken")

func (failing) Read([]byte) (int, error) { return 0, errBroken }

// TestSpliceError: a failed direction ends the other at once (both sides
// closed) and is returned, whichever of the two it is.
func TestSpliceError(t *testing.T) {
	for _, failFirst := range []bool{true, false} {
		_, a := unixPair(t)
		b, y := unixPair(t)
		done := make(chan error, 1)
		go func() {
			if failFirst {
				done <- Splice(failing{a}, b)
			} else {
				done <- Splice(b, failing{a})
			}
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(testbus.Timeout):
			b.Close() // ends Splice, so that the test does not hang
			t.Fatalf("failing side first %v: Splice did not end after a failed direction", failFirst)
		}
		if !errors.Is(err, errBroken) {
			t.Fatalf("failing side first %v: Splice: %v, want %v", failFirst, err, errBroken)
		}
		if _, err := y.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("failing side first %v: the other side reads %v, want its end", failFirst, err)
		}
	}
}
