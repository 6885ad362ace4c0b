package ring

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is the sentinel for a ring whose peer broke a rule; the
	// concrete error is a *CorruptError.
	ErrCorrupt = errors.New("ring corrupt")

	// ErrEmpty means the reader found no unread packet.
	ErrEmpty = errors.New("ring empty")

	// ErrFull means the packet does not fit in the free space now; it may
	// fit once the reader consumes more.
	ErrFull = errors.New("ring full")

	// ErrTooLarge means the packet can never fit: it is larger than the
	// ring can hold or than a descriptor can describe.
	ErrTooLarge = errors.New("packet too large for ring")

	// ErrNoPendingSend means the ring was set up without the pending send
	// size feature, so a blocked writer cannot ask to be woken.
	ErrNoPendingSend = errors.New("ring does not use pending send size")
)

// CorruptError reports the first rule the ring broke.
type CorruptError struct {
	// Control is true when Offset is into the control page (a bad index),
	// false when it is into the data area (a bad packet).
	Control bool
	// Offset is the byte offset of the offending field or packet.
	Offset uint32
	// Rule is the rule broken, in words.
	Rule string
}

func (e *CorruptError) Error() string {
	area := "data"
	if e.Control {
		area = "control page"
	}
	return fmt.Sprintf("ring corrupt at %s offset %#x: %s", area, e.Offset, e.Rule)
}

// Is makes errors.Is(err, ErrCorrupt) true for every *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptData(off uint32, format string, args ...any) error {
	return &CorruptError{Offset: off, Rule: fmt.Sprintf(format, args...)}
}

func corruptControl(off uint32, format string, args ...any) error {
	return &CorruptError{Control: true, Offset: off, Rule: fmt.Sprintf(format, args...)}
}
