package transport

import (
	"errors"
	"fmt"
	"io"
)

// Errors returned by this package; compare with errors.Is.
var (
	// ErrClosed: the local end was closed (Conn.Close, Listener.Close,
	// Event.Close) before or during the call.
	ErrClosed = errors.New("transport: closed")

	// ErrWaitsStopped: Event.StopWaits was called; the event is still
	// open, and Signal still works.
	ErrWaitsStopped = errors.New("transport: waits stopped")

	// ErrPeerClosed: the peer closed its end or died. It matches io.EOF
	// too, for callers that treat a vanished peer like the end of a
	// stream.
	ErrPeerClosed = fmt.Errorf("transport: peer closed the connection: %w", io.EOF)

	// ErrProtocol: the peer broke the transport protocol; the concrete
	// error is a *FrameError. The connection is unusable afterwards.
	ErrProtocol = errors.New("transport: protocol violation")

	// ErrVersion: the peer speaks another transport version (a
	// *FrameError that also matches ErrProtocol).
	ErrVersion = errors.New("transport: unsupported transport version")

	// ErrMessageSize: a control message to send is empty or longer than
	// MaxMessageSize.
	ErrMessageSize = errors.New("transport: control message size out of range")

	// ErrSendTimeout: a send waited longer than the send timeout
	// (Conn.SetSendTimeout) for room in the peer's receive queue: the
	// peer is not reading. The frame was not sent; the connection is
	// still open.
	ErrSendTimeout = errors.New("transport: send timed out: the peer does not read")

	// ErrNotReceived: TakeMemory or TakeEvent found nothing: the peer has
	// not handed it over yet (or Recv has not read that far), or it was
	// already taken.
	ErrNotReceived = errors.New("transport: not received")
)

// FrameError describes a frame that breaks docs/TRANSPORT.md.
type FrameError struct {
	Kind   uint8  // frame kind byte as received, 0 if the frame was too short
	Reason string // the rule, in words
	Err    error  // an underlying cause, if any (e.g. guestmem.ErrNotSealed)
}

func (e *FrameError) Error() string {
	s := fmt.Sprintf("transport: bad frame (kind %d): %s", e.Kind, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes every *FrameError match ErrProtocol.
func (e *FrameError) Is(target error) bool { return target == ErrProtocol }

// Unwrap gives the underlying cause.
func (e *FrameError) Unwrap() error { return e.Err }
