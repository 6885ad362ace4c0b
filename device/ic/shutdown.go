package ic

import (
	"encoding/binary"
	"fmt"
)

// Shutdown bodies (DEVICES.md §3.6): u32 reason, u32 timeout (seconds),
// u32 flags, then a 2048-byte display message.
const (
	ShutdownSize       = 2060
	shutdownMessageOff = 12
	// MaxShutdownMessage is the display message's field: UTF-16LE with
	// its terminator (docs/ICS.md: the encoding is our reading).
	MaxShutdownMessage = 2048
	// ReasonPlanned is the reason OpenVMM sends.
	ReasonPlanned uint32 = 0x80000000
)

// Shutdown flags.
const (
	ShutdownForce     uint32 = 1
	ShutdownRestart   uint32 = 2
	ShutdownHibernate uint32 = 4
)

// Shutdown is a shutdown request body.
type Shutdown struct {
	Reason  uint32
	Timeout uint32 // seconds
	Flags   uint32
	Message string
}

// Action names what Flags ask for.
func (s *Shutdown) Action() string {
	a := "shutdown"
	switch {
	case s.Flags&^ShutdownForce == ShutdownRestart:
		a = "reboot"
	case s.Flags&^ShutdownForce == ShutdownHibernate:
		a = "hibernate"
	case s.Flags&^ShutdownForce != 0:
		return fmt.Sprintf("flags-%#x", s.Flags)
	}
	if s.Flags&ShutdownForce != 0 {
		a = "forced-" + a
	}
	return a
}

// Marshal returns the 2060-byte body; an error for a message that does
// not fit its field.
func (s *Shutdown) Marshal() ([]byte, error) {
	b := make([]byte, ShutdownSize)
	binary.LittleEndian.PutUint32(b, s.Reason)
	binary.LittleEndian.PutUint32(b[4:], s.Timeout)
	binary.LittleEndian.PutUint32(b[8:], s.Flags)
	if s.Message != "" {
		if _, ok := encodeUTF16(b[shutdownMessageOff:], s.Message); !ok {
			return nil, fmt.Errorf("ic: shutdown message of %d UTF-16 bytes, at most %d with its terminator (and no NUL)", utf16Len(s.Message), MaxShutdownMessage)
		}
	}
	return b, nil
}

// UnmarshalShutdown reads a shutdown body, which must be whole (Linux's
// rule). The message ends at its first NUL; one without a NUL in its
// field is malformed.
func UnmarshalShutdown(b []byte) (*Shutdown, error) {
	if len(b) < ShutdownSize {
		return nil, malformed("shutdown body of %d bytes, want %d", len(b), ShutdownSize)
	}
	s := &Shutdown{Reason: binary.LittleEndian.Uint32(b), Timeout: binary.LittleEndian.Uint32(b[4:]), Flags: binary.LittleEndian.Uint32(b[8:])}
	field := b[shutdownMessageOff:ShutdownSize]
	end := -1
	for i := 0; i+1 < len(field); i += 2 {
		if field[i] == 0 && field[i+1] == 0 {
			end = i + 2
			break
		}
	}
	if end < 0 {
		return nil, malformed("shutdown message without a NUL terminator")
	}
	var err error
	s.Message, err = decodeUTF16(field, uint32(end), "shutdown message")
	return s, err
}
