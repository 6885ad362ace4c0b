package guestmem

import (
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/govmbus/govmbus/gpa"
)

// PageSize and PageShift restate gpa's so callers of this package need not
// import both for arithmetic on guest addresses.
const (
	PageSize  = gpa.PageSize
	PageShift = gpa.PageShift
)

// MaxSize bounds guest memory: large enough for any test or demo guest,
// small enough that every GPA computed from an in-range PFN fits in int.
const MaxSize = 1 << 40

// Memory is guest RAM mapped into this process, shared with the peer.
//
// Accessors are safe for concurrent use; the bytes themselves are shared
// with the other process, so what a caller reads from them is only as
// consistent as the protocol on top makes it (the ring layer reads each
// peer-written field once). Close must not run concurrently with any other
// use of the Memory or of slices obtained from it: unmapping pages under a
// reader faults the process.
type Memory struct {
	data  []byte // MAP_SHARED, PROT_READ|PROT_WRITE, len == size
	fd    int
	file  *os.File // if not nil, fd is its descriptor, closed by closing it
	size  uint64
	pages uint64

	closeOnce sync.Once
	closeErr  error
	// life orders Detach and Close; detached: Detach closed the
	// descriptor and gave up the pages (under life).
	life     sync.Mutex
	detached bool
}

// Size is the size of guest memory in bytes, a multiple of PageSize.
func (m *Memory) Size() uint64 { return m.size }

// Pages is the number of pages of guest memory; valid PFNs are [0, Pages()).
func (m *Memory) Pages() uint64 { return m.pages }

// Bytes returns the whole mapping. It exists for code that owns guest
// memory outright, such as a guest laying out a ring in pages it
// allocated, and for tests; code handling addresses from the peer should
// use View, Segments or a RangeView, which check bounds. The slice is valid
// until Close.
func (m *Memory) Bytes() []byte { return m.data }

// View returns the n bytes of guest memory starting at guest physical
// address addr. The slice aliases shared memory and is valid until Close.
func (m *Memory) View(addr uint64, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative length %d", ErrOutOfBounds, n)
	}
	// Written as a subtraction so that addr+n cannot overflow.
	if addr > m.size || uint64(n) > m.size-addr {
		return nil, fmt.Errorf("%w: %d bytes at GPA %#x, guest memory is %d bytes", ErrOutOfBounds, n, addr, m.size)
	}
	end := addr + uint64(n)
	return m.data[addr:end:end], nil
}

// PageView returns page pfn of guest memory, PageSize bytes.
func (m *Memory) PageView(pfn uint64) ([]byte, error) {
	if pfn >= m.pages {
		return nil, fmt.Errorf("%w: PFN %#x, guest memory has %d pages", ErrOutOfBounds, pfn, m.pages)
	}
	start := pfn << PageShift
	return m.data[start : start+PageSize : start+PageSize], nil
}

// checkSize is the one rule for a memory size, applied both to a size the
// guest asks for and to the size of a descriptor the host receives.
func checkSize(size uint64) error {
	switch {
	case size == 0:
		return fmt.Errorf("%w: zero", ErrBadSize)
	case size%PageSize != 0:
		return fmt.Errorf("%w: %d is not a whole number of %d-byte pages", ErrBadSize, size, PageSize)
	case size > MaxSize || size > math.MaxInt:
		return fmt.Errorf("%w: %d exceeds the maximum %d", ErrBadSize, size, uint64(MaxSize))
	}
	return nil
}
