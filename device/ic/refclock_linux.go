package ic

import "golang.org/x/sys/unix"

// ReferenceTime is the partition reference counter of this bus, in 100 ns
// ticks: CLOCK_MONOTONIC, which host and guest read alike since they are
// two processes of one machine (on Hyper-V it is the hypervisor's
// per-partition counter). Time sync 4.0 carries it so that the guest can
// add the time the message spent in transit.
func ReferenceTime() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano()) / 100
}
