package servicing

import (
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// keeperVar names the environment variable that tells a successor the
// process id of its predecessor's keeper, so that it can reap it. It is
// apart from EnvVar so that a successor that knows no keeper (an older
// release) still reads the handover; it then leaves a zombie behind.
const keeperVar = "GOVMBUS_HANDOVER_KEEPER"

// keeperMu serialises keepers, which share one stack. A successful exec
// never unlocks it: the image that held it is gone.
var keeperMu sync.Mutex

// keeper is a child process that holds the address space of the process
// that started it across that process's exec.
type keeper struct {
	pid int
	wfd int // closed by the exec, or by release
}

// release ends a keeper after an exec that failed: the keeper exits once
// the write end is closed, and is reaped here.
func (k *keeper) release() {
	unix.Close(k.wfd)
	reap(k.pid)
	keeperMu.Unlock()
}

// reap waits for the child pid to exit.
func reap(pid int) {
	for {
		_, err := unix.Wait4(pid, nil, 0, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// reapKeeper reaps the predecessor's keeper, if it named one, on a
// goroutine of its own: the keeper exits as soon as the exec closed its
// pipe, but tearing down the old address space takes it a few
// milliseconds, which the successor does not wait for. A process id that
// is not a child of this process is refused by the kernel (ECHILD) and
// ignored.
func reapKeeper() {
	v, ok := os.LookupEnv(keeperVar)
	if !ok {
		return
	}
	os.Unsetenv(keeperVar)
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 0 {
		return
	}
	go reap(pid)
}
