package guestmem

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// requiredSeals make a shared memfd safe to map: the peer can neither
// shrink it (SIGBUS on our next access past the new end) nor grow it, and
// cannot remove the seals afterwards.
const requiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// New creates guest memory of size bytes (a whole number of pages): a
// sealed memfd mapped shared and writable. The pages start zeroed.
func New(size uint64) (*Memory, error) {
	if err := checkSize(size); err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("govmbus-guest-memory", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("guestmem: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("guestmem: sizing memfd to %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, requiredSeals); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("guestmem: sealing memfd: %w", err)
	}
	m, err := mapFD(fd, size)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return m, nil
}

// FromFD maps guest memory from a descriptor received from the guest.
//
// FromFD takes ownership of fd in every case: on success the Memory closes
// it on Close, on error FromFD has already closed it. That suits a
// descriptor that just arrived from an untrusted peer, which has no other
// owner. The descriptor must be a sealed memfd (ErrNotSealed otherwise)
// whose size is a whole number of pages (ErrBadSize).
func FromFD(fd int) (*Memory, error) {
	m, err := fromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return m, nil
}

// FromFile maps guest memory from f, typically a descriptor inherited from
// a predecessor process during servicing. It duplicates f's descriptor;
// the caller still owns f and may close it.
func FromFile(f *os.File) (*Memory, error) {
	fd, err := dupFile(f)
	if err != nil {
		return nil, fmt.Errorf("guestmem: %w", err)
	}
	return FromFD(fd)
}

// AdoptFile maps guest memory from f and takes ownership of f in every
// case: on success the Memory closes f on Close, on error AdoptFile has
// already closed it. It is FromFile without the duplicate, for a file
// inherited from a predecessor process that has no other use. The checks
// are FromFD's; f is made close-on-exec.
func AdoptFile(f *os.File) (*Memory, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("guestmem: %w", err)
	}
	var m *Memory
	var merr error
	if err := rc.Control(func(fd uintptr) {
		// Ours alone from now on: it must not leak into a child.
		if _, err := unix.FcntlInt(fd, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			merr = fmt.Errorf("guestmem: %w", err)
			return
		}
		m, merr = fromFD(int(fd))
	}); err != nil {
		merr = fmt.Errorf("guestmem: %w", err)
	}
	if merr != nil {
		f.Close()
		return nil, merr
	}
	// The descriptor stays valid while f is open, which is until Close.
	m.file = f
	return m, nil
}

func fromFD(fd int) (*Memory, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		// EINVAL: not a memfd, or one created without MFD_ALLOW_SEALING.
		return nil, fmt.Errorf("%w: reading seals: %w", ErrNotSealed, err)
	}
	if seals&requiredSeals != requiredSeals {
		return nil, fmt.Errorf("%w: seals %#x, need %#x", ErrNotSealed, seals, requiredSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("guestmem: fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < 0 {
		return nil, fmt.Errorf("%w: descriptor is not a regular file", ErrNotSealed)
	}
	size := uint64(st.Size)
	if err := checkSize(size); err != nil {
		return nil, err
	}
	return mapFD(fd, size)
}

// mapFD maps size bytes of fd shared and writable. The size is final:
// the seals checked or set by the caller forbid any change.
func mapFD(fd int, size uint64) (*Memory, error) {
	data, err := mmapShared(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		return nil, fmt.Errorf("guestmem: mapping %d bytes: %w", size, err)
	}
	return &Memory{data: data, fd: fd, size: size, pages: size >> PageShift}, nil
}

// File returns a duplicate of the memory's descriptor, for handing guest
// memory to another process (the transport sends it to the host; a host
// being serviced passes it to its successor). The caller owns the result.
// Precondition: the Memory is not closed.
func (m *Memory) File() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(m.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("guestmem: dup: %w", err)
	}
	return os.NewFile(uintptr(fd), "guestmem"), nil
}

// Descriptor is the memory's descriptor number, borrowed: it stays the
// Memory's, valid until Close, for handing to a successor process by
// number (servicing.Exec). Unlike File it makes no duplicate and no
// *os.File. The caller must not close it or use it after Close.
func (m *Memory) Descriptor() int { return m.fd }

// Close unmaps guest memory and closes its descriptor. It is idempotent;
// later calls return the first call's result. Slices obtained from the
// Memory must not be used afterwards.
func (m *Memory) Close() error {
	m.life.Lock()
	defer m.life.Unlock()
	m.closeOnce.Do(func() {
		err := munmap(m.data)
		var cerr error
		if m.detached {
			// Detach closed the descriptor.
		} else if m.file != nil {
			cerr = m.file.Close()
		} else {
			cerr = unix.Close(m.fd)
		}
		if err == nil {
			err = cerr
		}
		m.data = nil
		if err != nil {
			m.closeErr = fmt.Errorf("guestmem: close: %w", err)
		}
	})
	return m.closeErr
}

// Detach gives up the memory's pages and descriptor but keeps its
// addresses: the shared mapping is replaced in place by private
// zero-filled memory, and the descriptor is closed. A slice of the memory
// still in use (a ring a channel writes to after its guest client
// closed) then reaches memory of this process alone, which the peer no
// longer sees, instead of faulting on an unmapped page. Close unmaps it.
// Detach after Close does nothing; it is idempotent.
func (m *Memory) Detach() error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.detached || m.data == nil {
		return nil
	}
	m.detached = true
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(m.data)), uintptr(len(m.data)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
	var cerr error
	if m.file != nil {
		cerr = m.file.Close()
	} else {
		cerr = unix.Close(m.fd)
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("guestmem: detach: %w", err)
	}
	return nil
}

// dupFile duplicates f's descriptor (close-on-exec) without switching f to
// blocking mode, as f.Fd would.
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup: %w", dupErr)
	}
	return nfd, nil
}
