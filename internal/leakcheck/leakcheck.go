// Package leakcheck is the test helper that proves a test left nothing
// behind: no goroutine still running and no file descriptor still open
// once its cleanups ran. The packages that start goroutines or hold
// descriptors (channel, host, the devices) register it at the top of their
// tests; STYLE.md asks for goroutines and descriptors counted around tests.
package leakcheck

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// settle is how long Check waits for goroutines and descriptors of a
// finished test to go away before it calls them leaked.
const settle = 3 * time.Second

// OpenFDs counts this process's open file descriptors.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// pollerOnce starts the runtime's network poller once per process.
var pollerOnce sync.Once

// startPoller makes the runtime open its network poller's descriptors (an
// epoll instance and its wake-up eventfd) now: the runtime opens them at
// the first use of a pollable descriptor and keeps them for the life of
// the process, so a test that is the first to use one would count them as
// its leak.
func startPoller() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
}

// Check fails t if it ends with more goroutines or open descriptors than it
// started with. Register it first in a test, so that its cleanup runs after
// every other one.
func Check(t testing.TB) {
	t.Helper()
	pollerOnce.Do(startPoller)
	fds, gs := OpenFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(settle)
		for (runtime.NumGoroutine() > gs || OpenFDs(t) > fds) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if after := OpenFDs(t); after > fds {
			t.Errorf("descriptor leak: %d open before, %d after", fds, after)
		}
		if after := runtime.NumGoroutine(); after > gs {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", gs, after, buf[:runtime.Stack(buf, true)])
		}
	})
}
