package guestmem

import "errors"

// Errors returned by this package. Concrete errors wrap one of these with
// detail, so compare with errors.Is.
var (
	// ErrOutOfBounds: an address, page number or length names bytes
	// outside guest memory.
	ErrOutOfBounds = errors.New("guestmem: outside guest memory")

	// ErrMalformedRange: a GPA range is inconsistent in itself, e.g. its
	// byte count needs more pages than it lists. Such errors also match
	// gpa.ErrMalformed.
	ErrMalformedRange = errors.New("guestmem: malformed GPA range")

	// ErrReadOnly: a write through a read-only view.
	ErrReadOnly = errors.New("guestmem: write to read-only guest memory")

	// ErrNotSealed: a memory descriptor lacks the seals that make it safe
	// to map (shrink, grow, seal).
	ErrNotSealed = errors.New("guestmem: memory descriptor is not sealed")

	// ErrBadSize: a size that is zero, not a whole number of pages, or
	// larger than this package supports.
	ErrBadSize = errors.New("guestmem: bad memory size")

	// ErrNoSpace: the allocator has no run of free pages that long.
	ErrNoSpace = errors.New("guestmem: no free guest pages")
)
