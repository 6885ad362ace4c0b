package main

import "fmt"

// Exit statuses shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1 // the job ran and failed (ring full, verification failed)
	exitUsage   = 2 // bad usage or bad input (unknown flag, corrupt ring, bad hex)
)

// exitError carries the exit status a subcommand wants alongside its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports bad usage or bad input: exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// usageError wraps err as bad input: exit status 2.
func usageError(err error) error {
	return &exitError{code: exitUsage, err: err}
}

// failuref reports that the job itself failed: exit status 1.
func failuref(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}
