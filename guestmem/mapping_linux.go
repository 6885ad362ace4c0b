package guestmem

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mapping is a list of guest pages mapped back to back into one virtually
// contiguous region, the way a hypervisor host sees a ring GPADL whose
// pages are scattered in guest memory. The ring layer needs its control
// page and data area as one []byte; this provides it without copying.
//
// A ReadOnly Mapping is mapped without write permission, so the guarantee
// comes from the MMU: a write through it faults the process, as any other
// write to read-only memory would.
type Mapping struct {
	data   []byte
	access Access

	closeOnce sync.Once
	closeErr  error
}

// MapPages maps the given guest pages, in order, into a new contiguous
// region. Every PFN must lie inside guest memory. The Mapping stays valid
// after the Memory is closed (it holds its own references to the pages)
// until its own Close.
func (m *Memory) MapPages(pfns []uint64, access Access) (*Mapping, error) {
	region, err := m.mapPages(pfns, access)
	if err != nil {
		return nil, err
	}
	return &Mapping{data: region, access: access}, nil
}

// MapPagesSplit is MapPages of pfns as two Mappings, of pfns[:at] and
// pfns[at:], made with one mmap where the pages are consecutive (as a
// channel's two rings usually are) instead of two. Each Mapping is
// unmapped by its own Close. It panics unless 0 < at < len(pfns).
func (m *Memory) MapPagesSplit(pfns []uint64, at int, access Access) (*Mapping, *Mapping, error) {
	if at <= 0 || at >= len(pfns) {
		panic(fmt.Sprintf("guestmem: MapPagesSplit of %d pages at %d", len(pfns), at))
	}
	region, err := m.mapPages(pfns, access)
	if err != nil {
		return nil, nil, err
	}
	cut := at << PageShift
	return &Mapping{data: region[:cut:cut], access: access}, &Mapping{data: region[cut:], access: access}, nil
}

// mapPages is MapPages, returning the region.
func (m *Memory) mapPages(pfns []uint64, access Access) ([]byte, error) {
	if len(pfns) == 0 {
		return nil, fmt.Errorf("%w: no pages to map", ErrMalformedRange)
	}
	for i, pfn := range pfns {
		if pfn >= m.pages {
			return nil, fmt.Errorf("%w: page %d is PFN %#x, guest memory has %d pages", ErrOutOfBounds, i, pfn, m.pages)
		}
	}
	if uint64(len(pfns)) > m.pages*8 {
		// A peer naming the same page over and over must not make us
		// reserve unbounded address space.
		return nil, fmt.Errorf("%w: %d pages to map from a memory of %d", ErrBadSize, len(pfns), m.pages)
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	switch access {
	case ReadWrite:
	case ReadOnly:
		prot = unix.PROT_READ
	default:
		panic(fmt.Sprintf("guestmem: MapPages with invalid %v", access))
	}

	size := len(pfns) << PageShift
	// A ring's pages are usually one run of consecutive PFNs: one mmap.
	if consecutive(pfns) {
		region, err := mmapShared(m.fd, int64(pfns[0]<<PageShift), size, prot)
		if err != nil {
			return nil, fmt.Errorf("guestmem: mapping PFN %#x: %w", pfns[0], err)
		}
		return region, nil
	}
	// Reserve the whole region first so the fixed mappings below land in
	// address space nobody else owns.
	base, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("guestmem: reserving %d bytes: %w", size, err)
	}
	region := unsafe.Slice((*byte)(base), size)
	// One mmap per run of consecutive PFNs, not per page.
	for i := 0; i < len(pfns); {
		j := i + 1
		for j < len(pfns) && pfns[j] == pfns[j-1]+1 {
			j++
		}
		addr := unsafe.Pointer(&region[i<<PageShift])
		if _, err := unix.MmapPtr(m.fd, int64(pfns[i]<<PageShift), addr, uintptr((j-i)<<PageShift),
			prot, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
			munmap(region)
			return nil, fmt.Errorf("guestmem: mapping PFN %#x: %w", pfns[i], err)
		}
		i = j
	}
	return region, nil
}

// Bytes returns the mapped pages, len(pfns)*PageSize bytes, valid until
// Close. Writing to the slice of a ReadOnly Mapping faults.
func (mp *Mapping) Bytes() []byte { return mp.data }

// Access is the access the Mapping was made with.
func (mp *Mapping) Access() Access { return mp.access }

// Close unmaps the region. It is idempotent. Precondition: no one uses
// the bytes any more.
func (mp *Mapping) Close() error {
	mp.closeOnce.Do(func() {
		if err := munmap(mp.data); err != nil {
			mp.closeErr = fmt.Errorf("guestmem: unmapping: %w", err)
		}
		mp.data = nil
	})
	return mp.closeErr
}

// consecutive reports whether pfns is one run of consecutive PFNs.
func consecutive(pfns []uint64) bool {
	for i := 1; i < len(pfns); i++ {
		if pfns[i] != pfns[i-1]+1 {
			return false
		}
	}
	return true
}

// mmapShared maps size bytes of fd from offset off, shared. It calls mmap
// directly: unix.Mmap records every mapping in a map behind a global
// mutex, which the many mappings of a restore contend on. Unmap the
// result with munmap, not unix.Munmap.
func mmapShared(fd int, off int64, size, prot int) ([]byte, error) {
	p, err := unix.MmapPtr(fd, off, nil, uintptr(size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}

// munmap unmaps b, which mmapShared or MapPages mapped.
func munmap(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}
