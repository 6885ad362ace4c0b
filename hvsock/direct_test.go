package hvsock

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/pipe"
)

// The guest's bytes go to the local socket from the channel's receive
// goroutine while the socket has room, and through the relay's flow once
// it is full (the local server not reading): every byte arrives once, in
// order, both ways taken. The local socket's send buffer is the relay's.
func TestRelayDirect(t *testing.T) {
	leakcheck.Check(t)
	ll, err := net.Listen("unix", t.TempDir()+"/local.sock")
	if err != nil {
		t.Fatal(err)
	}
	gc, lc, rc, deadline := relayThrough(t, ll)
	if got := sendBuffer(t, rc.local); got < 2*localSendBuffer {
		t.Errorf("the local socket's send buffer is %d bytes, want %d", got, 2*localSendBuffer)
	}

	s0 := warmDirect(t, rc, gc, lc, deadline)

	// More than the socket, the pipe and the ring hold: the guest's
	// writer waits until the local server reads.
	up := make([]byte, 4*localSendBuffer+3<<20)
	rand.Read(up)
	sent := make(chan error, 1)
	go func() {
		_, err := gc.Write(up)
		if err == nil {
			err = gc.CloseWrite()
		}
		sent <- err
	}()
	// The pipe full, its last packet in: the socket is (packets held for
	// a direct write go to it as the last one comes in).
	testbus.Eventually(t, "the pipe holding what the full socket did not take", func() bool {
		return rc.gc.host.pipe.UnreadLen() > DefaultMaxBuffered-pipe.MaxData
	})
	got, err := io.ReadAll(lc)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, up) {
		t.Fatalf("the local server read %d bytes, not the %d sent (direct wrote %d)", len(got), len(up), rc.sent.Load()-s0)
	}
	direct := rc.sent.Load() - s0
	if direct == 0 {
		t.Fatal("the relay wrote none of the stream from the receive goroutine")
	}
	if direct >= int64(len(up)) {
		t.Fatalf("the direct writes wrote %d of %d before the socket filled: the flow took nothing", direct, len(up))
	}
	t.Logf("%d bytes, %d written from the receive goroutine", len(up), rc.sent.Load()-s0)
}

// relayThrough relays port 5000 of a new rig to ll, which it closes at
// the test's end, and connects a guest through it: the guest's end, the
// local end, the relay's connection, and the deadline both ends have.
func relayThrough(t *testing.T, ll net.Listener) (*Conn, net.Conn, *relayed, time.Time) {
	t.Helper()
	t.Cleanup(func() { ll.Close() })
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	rl, err := r.srv.Relay(Route{Service: svc5000, Network: ll.Addr().Network(), Address: ll.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	gc, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close() })
	lc, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	deadline := time.Now().Add(2 * testbus.Timeout)
	lc.SetDeadline(deadline)
	gc.SetDeadline(deadline)
	var rc *relayed
	testbus.Eventually(t, "the relayed connection", func() bool {
		rl.mu.Lock()
		defer rl.mu.Unlock()
		for c := range rl.conns {
			rc = c
		}
		return rc != nil
	})
	return gc, lc, rc, deadline
}

// warmDirect sends a byte at a time until one goes from the receive
// goroutine: then the flow waits in Read with nothing pending, as it
// does whenever it has caught up. (Before its first Read the flow takes
// the bytes.) It returns the bytes the direct writes wrote.
func warmDirect(t *testing.T, rc *relayed, gc *Conn, lc net.Conn, deadline time.Time) int64 {
	t.Helper()
	one := []byte{0}
	for rc.sent.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay wrote nothing from the receive goroutine")
		}
		if _, err := gc.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(lc, one); err != nil {
			t.Fatal(err)
		}
	}
	return rc.sent.Load()
}

// sendBuffer is c's SO_SNDBUF.
func sendBuffer(t *testing.T, c HalfConn) int {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		n, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return n
}

// A relay to a TCP socket writes from the receive goroutine too, and
// the stream arrives whole and in order.
func TestRelayDirectTCP(t *testing.T) {
	leakcheck.Check(t)
	ll, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gc, lc, rc, deadline := relayThrough(t, ll)
	s0 := warmDirect(t, rc, gc, lc, deadline)
	up := make([]byte, 4<<20)
	rand.Read(up)
	sent := make(chan error, 1)
	go func() {
		_, err := gc.Write(up)
		if err == nil {
			err = gc.CloseWrite()
		}
		sent <- err
	}()
	got, err := io.ReadAll(lc)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, up) {
		t.Fatalf("the local server read %d bytes, not the %d sent", len(got), len(up))
	}
	if rc.sent.Load() == s0 {
		t.Fatal("the relay wrote none of the stream from the receive goroutine")
	}
	t.Logf("%d bytes, %d written from the receive goroutine", len(up), rc.sent.Load()-s0)
}
