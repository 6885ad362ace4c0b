package channel

import (
	"errors"
	"fmt"
)

// Status is an NTSTATUS value, as KMCL returns it. It is an error, so a
// function of this package that fails returns a Status (or an error
// wrapping one): compare with errors.Is(err, StatusCancelled), or take the
// code with StatusOf.
type Status uint32

// The NTSTATUS values this package returns.
const (
	StatusSuccess                Status = 0x00000000
	StatusBufferOverflow         Status = 0x80000005 // a warning: the send did not fit and was not queued
	StatusUnsuccessful           Status = 0xC0000001
	StatusInvalidParameter       Status = 0xC000000D
	StatusMoreProcessingRequired Status = 0xC0000016
	StatusBufferTooSmall         Status = 0xC0000023
	StatusInsufficientResources  Status = 0xC000009A
	StatusInvalidParameter1      Status = 0xC00000EF // a setter called on a channel that is not disabled
	StatusInvalidParameter2      Status = 0xC00000F0 // a setter's first argument is invalid (KMCL's parameter 2)
	StatusInvalidParameter3      Status = 0xC00000F1 // a setter's second argument is invalid (KMCL's parameter 3)
	StatusCancelled              Status = 0xC0000120
	StatusInvalidDeviceState     Status = 0xC0000184
	StatusInvalidBufferSize      Status = 0xC0000206
	StatusDeviceRemoved          Status = 0xC00002B6
)

var statusNames = map[Status]string{
	StatusSuccess:                "STATUS_SUCCESS",
	StatusBufferOverflow:         "STATUS_BUFFER_OVERFLOW",
	StatusUnsuccessful:           "STATUS_UNSUCCESSFUL",
	StatusInvalidParameter:       "STATUS_INVALID_PARAMETER",
	StatusMoreProcessingRequired: "STATUS_MORE_PROCESSING_REQUIRED",
	StatusBufferTooSmall:         "STATUS_BUFFER_TOO_SMALL",
	StatusInsufficientResources:  "STATUS_INSUFFICIENT_RESOURCES",
	StatusInvalidParameter1:      "STATUS_INVALID_PARAMETER_1",
	StatusInvalidParameter2:      "STATUS_INVALID_PARAMETER_2",
	StatusInvalidParameter3:      "STATUS_INVALID_PARAMETER_3",
	StatusCancelled:              "STATUS_CANCELLED",
	StatusInvalidDeviceState:     "STATUS_INVALID_DEVICE_STATE",
	StatusInvalidBufferSize:      "STATUS_INVALID_BUFFER_SIZE",
	StatusDeviceRemoved:          "STATUS_DEVICE_REMOVED",
}

// Error names the status and its code.
func (s Status) Error() string {
	if n, ok := statusNames[s]; ok {
		return fmt.Sprintf("%s (%#08x)", n, uint32(s))
	}
	return fmt.Sprintf("NTSTATUS %#08x", uint32(s))
}

// Success reports whether s is a success code (NT_SUCCESS: severity
// success or informational). StatusBufferOverflow is a warning, not a
// success.
func (s Status) Success() bool { return int32(s) >= 0 && s>>30 != 2 }

// StatusOf is the NTSTATUS an error carries: StatusSuccess for nil, the
// Status found by errors.As, else StatusUnsuccessful.
func StatusOf(err error) Status {
	if err == nil {
		return StatusSuccess
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return StatusUnsuccessful
}

// statusError is a Status with detail. errors.Is matches the Status and,
// when the detail was formatted with %w, the cause it wraps: an error that
// crosses this package keeps what the layers under it said
// (errors.Is(err, ring.ErrCorrupt)) beside what KMCL returns.
type statusError struct {
	s      Status
	detail error
}

func (e *statusError) Error() string   { return "channel: " + e.detail.Error() + ": " + e.s.Error() }
func (e *statusError) Unwrap() []error { return []error{e.s, e.detail} }

// statusErrorf wraps s with a message formatted as by fmt.Errorf, so a %w
// in format keeps that cause.
func statusErrorf(s Status, format string, args ...any) *statusError {
	return &statusError{s: s, detail: fmt.Errorf(format, args...)}
}

// fail is statusErrorf as an error.
func fail(s Status, format string, args ...any) error {
	return statusErrorf(s, format, args...)
}
