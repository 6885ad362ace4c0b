package ring

import (
	"fmt"
	"os"
	"syscall"
)

// File is a ring held in a file: the control page followed by the data
// area, mapped shared so that other processes mapping the same file see
// every change.
type File struct {
	f      *os.File
	region []byte
}

// OpenFile maps the ring file at path, writable or read-only. Its size must
// be a 4096-byte control page plus a positive multiple of 4096 data bytes.
func OpenFile(path string, writable bool) (*File, error) {
	flag, prot := os.O_RDONLY, syscall.PROT_READ
	if writable {
		flag, prot = os.O_RDWR, syscall.PROT_READ|syscall.PROT_WRITE
	}
	// O_NONBLOCK: the open of a FIFO waits for a writer without it, and
	// the check below refuses what is not a regular file.
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is not a regular file", errRegion, path)
	}
	size := st.Size()
	if size < ControlSize+4096 || (size-ControlSize)%4096 != 0 || size-ControlSize > 1<<32-4096 {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, want a %d-byte control page plus a multiple of 4096 data bytes",
			errRegion, path, size, ControlSize)
	}
	region, err := syscall.Mmap(int(f.Fd()), 0, int(size), prot, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return &File{f: f, region: region}, nil
}

// CreateFile makes a new ring file at path with dataSize data bytes and a
// zeroed control page. It fails if path exists.
func CreateFile(path string, dataSize int) error {
	if dataSize < 4096 || dataSize%4096 != 0 || uint64(dataSize) > 1<<32-4096 {
		return fmt.Errorf("%w: data size %d is not a positive multiple of 4096 below 4 GiB", errRegion, dataSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(ControlSize + dataSize)); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Region is the mapped ring: control page, then data.
func (f *File) Region() []byte { return f.region }

// Close unmaps and closes the file. Endpoints over Region must not be used
// afterwards.
func (f *File) Close() error {
	if f.region == nil {
		return nil
	}
	err := syscall.Munmap(f.region)
	f.region = nil
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}
