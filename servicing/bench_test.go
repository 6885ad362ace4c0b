package servicing

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchFDs is about what a host of 32 guests, each with two open
// channels, hands over: a socket, memory and four events per guest.
const benchFDs = 200

// benchDescriptors opens n descriptors (eventfds) for the benchmarks,
// closed when b ends.
func benchDescriptors(b *testing.B, n int) map[string]int {
	b.Helper()
	fds := make(map[string]int, n)
	for i := range n {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			b.Fatal(err)
		}
		fds[fmt.Sprintf("g%d.ev%d.%d", i/6, i%6, i%2)] = fd
	}
	b.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	return fds
}

// BenchmarkExecPrepare is what Exec does to benchFDs descriptors before
// and, failing, after the exec: the variable, close-on-exec cleared on
// each and set again.
func BenchmarkExecPrepare(b *testing.B) {
	h := Handover{FDs: benchDescriptors(b, benchFDs), Paused: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, fds, err := handoverSpec(h, 3)
		if err != nil {
			b.Fatal(err)
		}
		if err := clearCloexec(fds[1:]); err != nil {
			b.Fatal(err)
		}
		restoreCloexec(fds[1:])
	}
}

// BenchmarkInherited is a successor's Inherited of benchFDs descriptors
// and a state of 64 KiB. The descriptors are duplicates made (and closed)
// outside the timer, as the exec would have left them: without
// close-on-exec.
func BenchmarkInherited(b *testing.B) {
	src := benchDescriptors(b, benchFDs)
	state := make([]byte, 64<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		stateFD, err := stateMemfd(state)
		if err != nil {
			b.Fatal(err)
		}
		h := Handover{FDs: make(map[string]int, len(src))}
		for name, fd := range src {
			nfd, err := unix.Dup(fd)
			if err != nil {
				b.Fatal(err)
			}
			h.FDs[name] = nfd
		}
		spec, _, err := handoverSpec(h, stateFD)
		if err != nil {
			b.Fatal(err)
		}
		os.Setenv(EnvVar, spec)
		b.StartTimer()
		got, ok, err := Inherited()
		b.StopTimer()
		if !ok || err != nil || len(got.FDs) != benchFDs || len(got.State) != len(state) {
			b.Fatalf("inherited %d descriptors, %d bytes: %v %v", len(got.FDs), len(got.State), ok, err)
		}
		for _, fd := range got.FDs {
			unix.Close(fd)
		}
		b.StartTimer()
	}
}
