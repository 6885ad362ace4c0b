package transport

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"
)

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkLeaks fails the test if it ends with more descriptors or
// goroutines than it started with. Register it first so that it runs
// after every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	fds, gs := openFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		if after := openFDs(t); after != fds {
			t.Errorf("descriptor leak: %d open before, %d after", fds, after)
		}
		// Goroutines of finished tests may take a moment to exit.
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if after := runtime.NumGoroutine(); after > gs {
			t.Errorf("goroutine leak: %d before, %d after", gs, after)
		}
	})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pipe(t *testing.T) (host, guest *Conn) {
	t.Helper()
	host, guest, err := Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); guest.Close() })
	return host, guest
}

func recvString(t *testing.T, c *Conn) string {
	t.Helper()
	buf := make([]byte, MaxMessageSize)
	n, err := c.Recv(testCtx(t), buf)
	if err != nil {
		t.Fatalf("%v Recv: %v", c.Role(), err)
	}
	return string(buf[:n])
}

func send(t *testing.T, c *Conn, s string) {
	t.Helper()
	if err := c.Send([]byte(s)); err != nil {
		t.Fatalf("%v Send(%q): %v", c.Role(), s, err)
	}
}
