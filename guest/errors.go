package guest

import (
	"errors"
	"fmt"
)

// ErrProtocol: the host broke the VMBus protocol (an answer it had no
// reason to send, or one with fields that contradict the request). Every
// guest-side error that blames the host wraps it, in this package and in
// the device clients built on it (echo, blk, ic, hvsock), so a caller
// can tell a hostile or broken host from a closed connection (ErrClosed),
// a refusal (*StatusError) or its own context ending.
var ErrProtocol = errors.New("guest: the host broke the protocol")

// Protocolf formats an error that wraps ErrProtocol: the host's fault,
// described for the log.
func Protocolf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}
