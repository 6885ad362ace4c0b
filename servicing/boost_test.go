package servicing

import (
	"errors"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// policies is the scheduling policy of each thread of this process.
func policies(t *testing.T) map[int]uint32 {
	t.Helper()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[int]uint32, len(tids))
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // gone meanwhile
		}
		out[tid] = a.Policy
	}
	return out
}

// TestBoost: Boost puts every thread of the process under SCHED_FIFO, a
// thread started meanwhile too, and Unboost puts every one back, also one
// a boosted thread started. Without the privilege Boost is refused and
// changes nothing.
func TestBoost(t *testing.T) {
	if err := Boost(); err != nil {
		if !errors.Is(err, unix.EPERM) {
			t.Fatal(err)
		}
		for tid, p := range policies(t) {
			if p != unix.SCHED_NORMAL {
				t.Fatalf("refused Boost left thread %d under policy %d", tid, p)
			}
		}
		t.Skip("Boost needs CAP_SYS_NICE or RLIMIT_RTPRIO, which this process lacks:", err)
	}
	defer Unboost()
	// A thread started while boosted: a goroutine locked to a new thread.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	started := make(chan struct{}, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started <- struct{}{}
			<-stop
		}()
	}
	for range 4 {
		<-started
	}
	for tid, p := range policies(t) {
		if p != unix.SCHED_FIFO {
			t.Errorf("boosted: thread %d under policy %d", tid, p)
		}
	}
	if err := Unboost(); err != nil {
		t.Fatal(err)
	}
	for tid, p := range policies(t) {
		if p != unix.SCHED_NORMAL {
			t.Errorf("unboosted: thread %d under policy %d", tid, p)
		}
	}
	close(stop)
	wg.Wait()
}
