package hvsock

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// pair is a guest connection and the host's end of it.
func pair(t *testing.T, r *rig) (gc, hc *Conn) {
	t.Helper()
	l, err := r.srv.Listen(svc5000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	gc, err = DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	hc = acceptWithin(t, hostAccept(l))
	return gc, hc
}

// sendAll writes data in 64 KiB writes, then half-closes.
func sendAll(c net.Conn, data []byte) error {
	for off := 0; off < len(data); off += 64 << 10 {
		if _, err := c.Write(data[off:min(len(data), off+64<<10)]); err != nil {
			return err
		}
	}
	return c.(*Conn).CloseWrite()
}

// readSum reads to EOF and returns the SHA-256 and count.
func readSum(c net.Conn) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, c)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

// A few MiB each way at once, through both ends' pipes: what each side
// reads to EOF has the SHA-256 of what the other wrote. Both FINs then
// make the host rescind, without a Close, and each Close returns at once.
func TestStreamBothWays(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	gc, hc := pair(t, r)
	up, down := make([]byte, 3<<20+12345), make([]byte, 2<<20+777)
	rand.Read(up)
	rand.Read(down)
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	hostGot, guestGot := make(chan result, 1), make(chan result, 1)
	sendErr := make(chan error, 2)
	go func() { sum, n, err := readSum(hc); hostGot <- result{sum, n, err} }()
	go func() { sum, n, err := readSum(gc); guestGot <- result{sum, n, err} }()
	go func() { sendErr <- sendAll(gc, up) }()
	go func() { sendErr <- sendAll(hc, down) }()
	for range 2 {
		if err := <-sendErr; err != nil {
			t.Fatal(err)
		}
	}
	h, g := <-hostGot, <-guestGot
	if h.err != nil || g.err != nil {
		t.Fatalf("read errors: host %v, guest %v", h.err, g.err)
	}
	if h.n != int64(len(up)) || h.sum != sha256.Sum256(up) {
		t.Fatalf("host read %d bytes, SHA-256 %x; want %d, %x", h.n, h.sum, len(up), sha256.Sum256(up))
	}
	if g.n != int64(len(down)) || g.sum != sha256.Sum256(down) {
		t.Fatalf("guest read %d bytes, SHA-256 %x; want %d, %x", g.n, g.sum, len(down), sha256.Sum256(down))
	}
	// Both directions ended: the host rescinds on its own.
	select {
	case <-hc.down:
	case <-time.After(testbus.Timeout):
		t.Fatal("no teardown after both FINs")
	}
	testbus.Eventually(t, "the connection uncounted", func() bool { return r.srv.connsOf(r.Guest) == 0 })
	closeWithin(t, gc)
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
}

// Half-close, each side first: the other reads EOF after the data, and
// can still write back until it half-closes too.
func TestHalfClose(t *testing.T) {
	leakcheck.Check(t)
	for _, guestFirst := range []bool{true, false} {
		name := "host first"
		if guestFirst {
			name = "guest first"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, Config{}, host.Limits{}, guest.Config{})
			gc, hc := pair(t, r)
			first, second := hc, gc
			if guestFirst {
				first, second = gc, hc
			}
			if _, err := first.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := first.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(second)
			if err != nil || string(got) != "request" {
				t.Fatalf("read %q, %v", got, err)
			}
			if _, err := first.Write([]byte("x")); err == nil {
				t.Fatal("Write after CloseWrite succeeded")
			}
			// The other direction still flows.
			if _, err := second.Write([]byte("reply")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 16)
			n, err := first.Read(buf)
			if err != nil || string(buf[:n]) != "reply" {
				t.Fatalf("read back %q, %v", buf[:n], err)
			}
			if err := second.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if n, err := first.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("after the second FIN: %d, %v", n, err)
			}
			select {
			case <-hc.down:
			case <-time.After(testbus.Timeout):
				t.Fatal("no teardown after both FINs")
			}
			closeWithin(t, gc)
			hc.Close()
		})
	}
}

// Deadlines fail Read and Write with os.ErrDeadlineExceeded, a net.Error
// whose Timeout is true, and the connection goes on after the deadline
// is lifted.
func TestDeadlines(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	gc, hc := pair(t, r)
	defer hc.Close()
	defer closeWithin(t, gc)
	for _, c := range []*Conn{gc, hc} {
		if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		_, err := c.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past the deadline: %v", err)
		}
		c.SetReadDeadline(time.Time{})
	}
	// A write deadline in the past fails at once.
	hc.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := hc.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the deadline: %v", err)
	}
	hc.SetDeadline(time.Time{})
	if _, err := hc.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(gc, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("after the deadline: %q, %v", buf, err)
	}
}

// Close during a blocked Read (either end, the other still open) ends
// it with net.ErrClosed; later calls fail the same way.
func TestCloseDuringRead(t *testing.T) {
	leakcheck.Check(t)
	for _, hostSide := range []bool{true, false} {
		name := "guest"
		if hostSide {
			name = "host"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, Config{}, host.Limits{}, guest.Config{})
			gc, hc := pair(t, r)
			c, other := gc, hc
			if hostSide {
				c, other = hc, gc
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 8))
				done <- err
			}()
			// The Read is blocked, or about to be: either way Close
			// ends it.
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("blocked Read after Close: %v", err)
				}
			case <-time.After(testbus.Timeout):
				t.Fatal("Read still blocked after Close")
			}
			if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after Close: %v", err)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
			// The other end saw the FIN Close sent.
			if _, err := other.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("the other end's Read: %v", err)
			}
			closeWithin(t, other)
		})
	}
}

// A guest that connects and never reads cannot make the host hold more
// than the ring: the host's writer waits (here until its deadline), with
// at most the ring's data bytes and the guest's receive bound written.
// A host that does not read holds at most Config.MaxBuffered of what the
// guest sends: the guest's writer waits. Other connections go on.
func TestNeverReads(t *testing.T) {
	leakcheck.Check(t)
	const maxBuffered = 64 << 10
	r := newRig(t, Config{MaxBuffered: maxBuffered, LingerTimeout: 100 * time.Millisecond}, host.Limits{}, guest.Config{})
	gc, hc := pair(t, r)
	// The host's end first: a guest's Close would wait CloseTimeout for
	// a host that does not read.
	defer closeWithin(t, gc)
	defer hc.Close()
	const ringData = (ringPages - 1) * 4096
	big := make([]byte, 4<<20)
	for _, w := range []struct {
		name  string
		c     *Conn
		bound int
	}{
		{"host writes, guest never reads", hc, ringData + guestMaxBuffered},
		{"guest writes, host never reads", gc, ringData + maxBuffered},
	} {
		w.c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := w.c.Write(big)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: Write of %d bytes ended with %d written, %v", w.name, len(big), n, err)
		}
		if n > w.bound {
			t.Fatalf("%s: %d bytes written before the writer waited, bound %d", w.name, n, w.bound)
		}
		t.Logf("%s: %d bytes in flight when the writer waited", w.name, n)
		w.c.SetWriteDeadline(time.Time{})
	}
	// The host serves another connection meanwhile.
	gc2, err := DialContext(testbus.Context(t), r.Client, svc5000)
	if err != nil {
		t.Fatal(err)
	}
	l := r.srv.listeners[svc5000]
	hc2 := acceptWithin(t, hostAccept(l))
	if _, err := gc2.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(hc2, buf); err != nil || !bytes.Equal(buf, []byte("ping")) {
		t.Fatalf("second connection: %q, %v", buf, err)
	}
	hc2.Close()
	closeWithin(t, gc2)
}

// What the host writes just before its Close reaches the guest, even when
// the guest reads only afterwards: the host's rescind waits until the
// guest has read the ring (here 10 KiB beyond what the guest's pipe holds
// unread, so they stay in the ring until the guest reads).
func TestCloseDelivers(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	gc, hc := pair(t, r)
	data := make([]byte, maxPackets(guestMaxBuffered)*16384+10<<10)
	rand.Read(data)
	if _, err := hc.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := hc.Close(); err != nil {
		t.Fatal(err)
	}
	sum, n, err := readSum(gc)
	if err != nil || n != int64(len(data)) || sum != sha256.Sum256(data) {
		t.Fatalf("guest read %d of %d bytes, %v; SHA-256 match %v", n, len(data), err, sum == sha256.Sum256(data))
	}
	closeWithin(t, gc)
}

// A write and the read of it allocate nothing in either Conn once the
// connection runs (the pipe and channel below hold to the same rule).
func TestReadWriteAllocs(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, Config{}, host.Limits{}, guest.Config{})
	gc, hc := pair(t, r)
	defer hc.Close()
	defer closeWithin(t, gc)
	out, in := make([]byte, 1024), make([]byte, 1024)
	a := testing.AllocsPerRun(200, func() {
		if _, err := gc.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(hc, in); err != nil {
			t.Fatal(err)
		}
	})
	if a != 0 {
		t.Fatalf("%v allocations per 1 KiB written and read", a)
	}
}
