package chaos

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/device/echo"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// A guest that turns its eventfds to blocking mode and pins the host's
// count at its limit gets its answer's signal all the same, and the host
// still shuts down: no host thread stays in the eventfd's read or write.
func TestEventBlockingPinned(t *testing.T) {
	leakcheck.Check(t)
	var mu sync.Mutex
	var servers []*echo.Server
	h := testbus.NewServed(t, host.Config{OnGuest: func(g *host.Guest) {
		s, err := echo.NewServer(g, echo.ServerConfig{})
		if err != nil {
			t.Errorf("echo server: %v", err)
			return
		}
		mu.Lock()
		servers = append(servers, s)
		mu.Unlock()
	}})
	socket := h.Listen(t)

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
		h.Stop()
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
