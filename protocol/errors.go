package protocol

import (
	"errors"
	"fmt"
)

// Sentinels for every way a message can fail to decode. The concrete error
// is a *DecodeError that names the type and length; match it with errors.Is.
var (
	// ErrShort: the message is shorter than its type's shortest form, or
	// shorter than the 8-byte header.
	ErrShort = errors.New("message too short")
	// ErrTooLong: the message is longer than MaxMessageSize, which no
	// SynIC message can be.
	ErrTooLong = errors.New("message longer than 240 bytes")
	// ErrUnknownType: the header's type is not one of the 29 message types.
	ErrUnknownType = errors.New("unknown message type")
	// ErrLength: the length lies within the type's range but matches none
	// of its forms (for example a 30-byte VersionResponse).
	ErrLength = errors.New("message length matches no form of its type")
)

// DecodeError describes a message Decode rejected.
type DecodeError struct {
	Type MessageType // from the header; zero if the header itself was short
	Len  int         // the length of the rejected message
	Err  error       // one of the sentinels above
	Want string      // the accepted lengths, in words, when Err is about length
}

func (e *DecodeError) Error() string {
	s := fmt.Sprintf("protocol: %v message of %d bytes: %v", e.Type, e.Len, e.Err)
	if e.Want != "" {
		s += " (want " + e.Want + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrShort) and its siblings work.
func (e *DecodeError) Unwrap() error { return e.Err }
