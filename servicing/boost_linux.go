package servicing

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Boost puts every thread of this process under the real-time policy
// SCHED_FIFO at priority 1, for a servicing's blackout: its work then runs
// as soon as a CPU is free instead of sharing the CPUs with the guests'
// threads, which wake up as channels start and would otherwise preempt
// it (each wake-up of a guest that slept is one). Threads the process
// starts meanwhile inherit the policy, and the policy survives an exec:
// the successor ends it with Unboost. It needs CAP_SYS_NICE (or an
// RLIMIT_RTPRIO of 1 or more); without, it changes nothing and returns
// the kernel's refusal. The kernel's real-time throttling (by default 950
// ms of every second) bounds what a boosted process can take.
func Boost() error {
	return setPolicy(unix.SCHED_FIFO, 1)
}

// Unboost puts every thread of this process back under the normal policy,
// after Boost here or in a predecessor that exec'd this image.
func Unboost() error {
	return setPolicy(unix.SCHED_NORMAL, 0)
}

// setPolicy sets policy and priority on every thread of this process,
// and again on any thread that appeared meanwhile (a boosted thread's new
// thread is boosted too, so Unboost looks until it finds none new). The
// first refusal stops it.
//
// A pass that finds nothing to change does not end it at once: a thread
// that was starting a thread as its policy changed can give the new one
// its old policy (the kernel copies it as the clone begins), and the new
// thread is listed only once the clone ends, which may be after that
// pass. Unboost then left it under SCHED_FIFO for good. So this thread
// sleeps for policySettle, which lets such a clone end, and only a pass
// after that pause that finds nothing to change ends it.
func setPolicy(policy uint32, prio uint32) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Priority: prio}
	// This thread goes last: once it is back under the normal policy
	// the guests' threads may take its CPU, the loop unfinished.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := unix.Gettid()
	done := map[int]bool{self: true}
	defer func() {
		unix.SchedSetAttr(self, &attr, 0) //nolint:errcheck // as the others, refused only without the privilege
	}()
	settled := false
	for range 8 {
		tids, err := threads()
		if err != nil {
			return err
		}
		changed := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			done[tid] = true
			// A thread started by one already done is under the
			// policy: new, but nothing to change.
			if a, err := unix.SchedGetAttr(tid, 0); err != nil || a.Policy == policy && a.Priority == prio {
				continue // gone meanwhile, or under the policy
			}
			changed++
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && err != unix.ESRCH {
				return fmt.Errorf("servicing: scheduling policy of thread %d: %w", tid, err)
			}
		}
		switch {
		case changed > 0:
			settled = false
		case settled:
			return nil
		default:
			time.Sleep(policySettle)
			settled = true
		}
	}
	return nil
}

// policySettle is how long setPolicy waits for clones under way to end
// before its last look: a clone takes tens of microseconds, longer only
// for a thread that waits for its CPU meanwhile.
const policySettle = time.Millisecond

// threads lists the ids of this process's threads.
func threads() ([]int, error) {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("servicing: threads: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("servicing: threads: %w", err)
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
