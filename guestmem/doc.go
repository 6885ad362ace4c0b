// Package guestmem is guest RAM as a region both sides of the bus can map.
//
// On Hyper-V the host reads and writes guest pages directly. govmbus has no
// hypervisor, so guest memory is a memfd: the guest creates it with New,
// hands the descriptor to the host (package transport carries it), and the
// host maps the same pages with FromFD. The memfd is sealed against growing
// and shrinking before it is shared, and the receiving side refuses one that
// is not, because a peer that could shrink the file would turn our next read
// of a mapped page into SIGBUS.
//
// Page numbers (PFNs) are page indices into guest memory: PFN 0 is the first
// page of the memfd and the guest physical address of PFN p is p<<12
// (gpa.PageShift). Everything a peer names by PFN or GPA, a GPADL or the
// ranges of a GPA-direct packet, is checked against the size of the memory
// before any byte is touched: a bad range is an error (ErrOutOfBounds,
// ErrMalformedRange), never a fault.
//
// Layering: guestmem sits on package gpa (page size, GPA ranges) and below
// the transport and the control planes. The ring layer does not import it;
// it works on the []byte that View or MapPages returns.
//
// The Allocator is the guest's bookkeeping of which pages hold rings and
// buffers; the host never allocates guest pages.
//
// All mmap, memfd and fcntl code lives in the *_linux.go files.
package guestmem
