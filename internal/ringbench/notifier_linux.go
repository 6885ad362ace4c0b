package ringbench

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// notifier is one eventfd: the signal one side of the ring sends the other.
type notifier struct{ fd int }

func newNotifier() (*notifier, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &notifier{fd: fd}, nil
}

// Signal adds one to the counter, waking a Wait.
func (n *notifier) Signal() {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 1)
	// A full counter (2^64-2 signals) or a closed fd are the only errors;
	// neither happens within one run.
	_, _ = unix.Write(n.fd, b[:])
}

// Wait blocks until at least one Signal and consumes them all.
func (n *notifier) Wait() error {
	var b [8]byte
	for {
		_, err := unix.Read(n.fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("eventfd read: %w", err)
		}
		return nil
	}
}

func (n *notifier) Close() error { return unix.Close(n.fd) }
