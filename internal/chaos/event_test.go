package chaos

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/transport"
)

// A guest that turns its eventfds to blocking mode and pins the host's
// count at its limit gets its answer's signal all the same, and the host
// still shuts down: no host thread stays in the eventfd's read or write.
func TestEventBlockingPinned(t *testing.T) {
	leakcheck.Check(t)
	socket := filepath.Join(t.TempDir(), "bus.sock")
	l, err := transport.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var servers []*echo.Server
	h := host.New(host.Config{OnGuest: func(g *host.Guest) {
		s, err := echo.NewServer(g, echo.ServerConfig{})
		if err != nil {
			t.Errorf("echo server: %v", err)
			return
		}
		mu.Lock()
		servers = append(servers, s)
		mu.Unlock()
	}})
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.Serve(l) //nolint:errcheck // ErrClosed at the end
	}()

	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 1))
		rep := &Report{}
		s, err := dial(context.Background(), Config{Socket: socket, MemorySize: 1 << 20}, rng, rep, true)
		if err != nil {
			t.Fatal(err)
		}
		if out := s.contact(); out != "" {
			t.Fatalf("contact: %s", out)
		}
		// Twice on the same channel: the second time its eventfds are
		// blocking already.
		for try := range 2 {
			start := time.Now()
			out := s.eventBlockingPinned()
			t.Logf("seed %d, try %d: %s after %v", seed, try, out, time.Since(start).Round(time.Millisecond))
			if out != "host's signal got through" {
				t.Errorf("seed %d, try %d: %s", seed, try, out)
			}
		}
		s.close()
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Close()
		<-served
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			s.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the host did not shut down in 10 s")
	}
}
