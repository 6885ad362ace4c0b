package guestmem

import (
	"fmt"
	"sync"
)

// Allocator hands out runs of guest pages, first fit over a bitmap. The
// guest uses it to carve rings and buffers out of guest memory; memory
// sizes here are modest (a 1 GiB guest is 32 KiB of bitmap), so a linear
// scan is simpler and fast enough.
//
// An Allocator is safe for concurrent use.
type Allocator struct {
	mu    sync.Mutex
	used  []uint64 // bit p set = page p allocated
	pages uint64
	free  uint64
}

// NewAllocator returns an allocator for pages pages, PFNs [0, pages), all
// free. A guest that wants GPA 0 never to name a buffer (some protocols
// read 0 as "none") can Alloc(1) first and keep that page.
func NewAllocator(pages uint64) *Allocator {
	return &Allocator{used: make([]uint64, (pages+63)/64), pages: pages, free: pages}
}

// Pages is the number of pages the allocator manages.
func (a *Allocator) Pages() uint64 { return a.pages }

// FreePages is the number of pages not allocated.
func (a *Allocator) FreePages() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free
}

// Alloc allocates n consecutive pages and returns the first PFN, or
// ErrNoSpace. n < 1 is a programming error and panics.
func (a *Allocator) Alloc(n int) (uint64, error) {
	if n < 1 {
		panic(fmt.Sprintf("guestmem: Alloc(%d)", n))
	}
	want := uint64(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if want > a.free {
		return 0, fmt.Errorf("%w: want %d pages, %d free", ErrNoSpace, n, a.free)
	}
	run := uint64(0)
	for p := uint64(0); p < a.pages; {
		w := a.used[p/64]
		if p%64 == 0 && w == ^uint64(0) {
			run = 0
			p += 64
			continue
		}
		if p%64 == 0 && w == 0 && run+64 < want && p+64 <= a.pages {
			run += 64
			p += 64
			continue
		}
		if w&(1<<(p%64)) != 0 {
			run = 0
		} else {
			run++
			if run == want {
				first := p + 1 - want
				a.mark(first, want, true)
				return first, nil
			}
		}
		p++
	}
	return 0, fmt.Errorf("%w: no run of %d pages (%d free, fragmented)", ErrNoSpace, n, a.free)
}

// Free returns n pages starting at pfn. Freeing pages that are not
// allocated, or outside the allocator, is a programming error and panics:
// it would otherwise hand the same page to two users.
func (a *Allocator) Free(pfn uint64, n int) {
	if n < 1 || pfn >= a.pages || uint64(n) > a.pages-pfn {
		panic(fmt.Sprintf("guestmem: Free(%#x, %d) outside %d pages", pfn, n, a.pages))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for p := pfn; p < pfn+uint64(n); p++ {
		if a.used[p/64]&(1<<(p%64)) == 0 {
			panic(fmt.Sprintf("guestmem: Free(%#x, %d): page %#x is not allocated", pfn, n, p))
		}
	}
	a.mark(pfn, uint64(n), false)
}

// Allocated reports whether page pfn is allocated.
func (a *Allocator) Allocated(pfn uint64) bool {
	if pfn >= a.pages {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used[pfn/64]&(1<<(pfn%64)) != 0
}

// mark sets or clears n bits from first. Must hold mu.
func (a *Allocator) mark(first, n uint64, set bool) {
	for p := first; p < first+n; p++ {
		if set {
			a.used[p/64] |= 1 << (p % 64)
		} else {
			a.used[p/64] &^= 1 << (p % 64)
		}
	}
	if set {
		a.free -= n
	} else {
		a.free += n
	}
}

// largestRun is the longest run of free pages; tests use it to check that
// freeing coalesces.
func (a *Allocator) largestRun() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	best, run := uint64(0), uint64(0)
	for p := uint64(0); p < a.pages; p++ {
		if a.used[p/64]&(1<<(p%64)) == 0 {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}
