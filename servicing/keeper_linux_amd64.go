package servicing

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// keeperClone starts the keeper (keeper_linux_amd64.s): a child sharing
// this address space that exits delay nanoseconds after rfd reads end of
// file.
func keeperClone(rfd, wfd, delay uintptr) (pid, errno uintptr)

// keeperStack is the keeper's stack. It needs a few bytes only: the
// keeper makes system calls and nothing else.
//
//lint:ignore U1000 used by keeper_linux_amd64.s
var keeperStack [4096]byte

// startKeeper starts a keeper for an exec about to happen. The execve of a
// process tears down its old address space before the new image runs; a
// host with guests mapped spends milliseconds of its servicing blackout
// there. A second process holding the address space defers that work to
// its own exit, which the exec triggers by closing the pipe's write end
// (close-on-exec) and which runs beside the new image.
//
// The keeper exits delay after the exec (or exit) that ends this image:
// with a delay its teardown of the address space does not compete with
// what the next image does at once.
func startKeeper(delay time.Duration) (*keeper, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	keeperMu.Lock()
	// The signal mask is the thread's: the clone and both mask changes
	// must happen on one thread, which the assembly does without a
	// preemption point; the lock is a second guard.
	runtime.LockOSThread()
	pid, errno := keeperClone(uintptr(p[0]), uintptr(p[1]), uintptr(max(delay, 0)))
	runtime.UnlockOSThread()
	unix.Close(p[0])
	if errno != 0 {
		keeperMu.Unlock()
		unix.Close(p[1])
		return nil, unix.Errno(errno)
	}
	return &keeper{pid: int(pid), wfd: p[1]}, nil
}
