package testbus

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// Timeout bounds every wait of the rig and of Eventually: far longer than
// anything should take, so that only a real hang fails a test on a loaded
// machine.
const Timeout = 10 * time.Second

// Eventually polls cond until it holds, failing tb with what after
// Timeout. It is for state that has no signal to wait on (a counter, a
// channel's state); where a channel or callback exists, wait on that.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Context is a context that ends after Timeout or with tb, whichever is
// first: for calls that wait on the other end.
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	tb.Cleanup(cancel)
	return ctx
}

// CPUTime is the CPU time this process used so far, user and system: on a
// shared machine a steadier measure for a benchmark than the wall clock.
func CPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
