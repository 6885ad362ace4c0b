package guestmem

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// checkNoFDLeak fails the test if it ends with more descriptors open than
// it started with.
func checkNoFDLeak(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); after != before {
			t.Errorf("descriptor leak: %d open before, %d after", before, after)
		}
	})
}

// pair returns guest memory and a second mapping of the same memfd, as the
// host would have it.
func pair(t *testing.T, pages uint64) (guest, host *Memory) {
	t.Helper()
	guest, err := New(pages * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	f, err := guest.File()
	if err != nil {
		t.Fatal(err)
	}
	host, err = FromFile(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(); guest.Close() })
	return guest, host
}

func TestSharedMappingsSeeEachOther(t *testing.T) {
	checkNoFDLeak(t)
	guest, host := pair(t, 4)
	if host.Size() != 4*PageSize || host.Pages() != 4 {
		t.Fatalf("host sees size %d, %d pages", host.Size(), host.Pages())
	}
	copy(guest.Bytes()[PageSize+10:], "from the guest")
	got, err := host.View(PageSize+10, 14)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "from the guest" {
		t.Fatalf("host read %q", got)
	}
	pg, err := host.PageView(3)
	if err != nil {
		t.Fatal(err)
	}
	copy(pg, "from the host")
	if !bytes.HasPrefix(guest.Bytes()[3*PageSize:], []byte("from the host")) {
		t.Fatal("guest does not see the host's write")
	}
}

func TestViewBounds(t *testing.T) {
	_, m := pair(t, 2)
	for _, tc := range []struct {
		addr uint64
		n    int
		ok   bool
	}{
		{0, 0, true},
		{0, 2 * PageSize, true},
		{2 * PageSize, 0, true},
		{PageSize, PageSize, true},
		{PageSize, PageSize + 1, false},
		{2*PageSize + 1, 0, false},
		{^uint64(0), 1, false},
		{^uint64(0) - 10, 20, false},
		{0, -1, false},
	} {
		b, err := m.View(tc.addr, tc.n)
		if tc.ok != (err == nil) {
			t.Errorf("View(%#x, %d): err %v, want ok=%v", tc.addr, tc.n, err, tc.ok)
		}
		if err != nil && (b != nil || !errors.Is(err, ErrOutOfBounds)) {
			t.Errorf("View(%#x, %d): %v with %d bytes", tc.addr, tc.n, err, len(b))
		}
		if err == nil && len(b) != tc.n {
			t.Errorf("View(%#x, %d): %d bytes", tc.addr, tc.n, len(b))
		}
	}
	if _, err := m.PageView(2); !errors.Is(err, ErrOutOfBounds) {
		t.Errorf("PageView past the end: %v", err)
	}
}

func TestNewRejectsBadSizes(t *testing.T) {
	for _, size := range []uint64{0, 100, PageSize + 1, MaxSize + PageSize} {
		if m, err := New(size); !errors.Is(err, ErrBadSize) {
			t.Errorf("New(%d): %v", size, err)
			if m != nil {
				m.Close()
			}
		}
	}
}

// memfd makes a memfd of size bytes with the given seals, bypassing New's
// rules, to hand FromFD what a hostile peer might.
func memfd(t *testing.T, size int64, seals int) int {
	t.Helper()
	fd, err := unix.MemfdCreate("test", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

func TestFromFDRejects(t *testing.T) {
	checkNoFDLeak(t)
	for _, tc := range []struct {
		name string
		fd   func() int
		want error
	}{
		{"no seals", func() int { return memfd(t, PageSize, 0) }, ErrNotSealed},
		{"no grow seal", func() int { return memfd(t, PageSize, unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL) }, ErrNotSealed},
		{"no seal seal", func() int { return memfd(t, PageSize, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) }, ErrNotSealed},
		{"partial page", func() int { return memfd(t, PageSize+8, requiredSeals) }, ErrBadSize},
		{"empty", func() int { return memfd(t, 0, requiredSeals) }, ErrBadSize},
		{"not a memfd", func() int {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			unix.Close(p[1])
			return p[0]
		}, ErrNotSealed},
		{"write sealed", func() int {
			return memfd(t, PageSize, requiredSeals|unix.F_SEAL_WRITE)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := FromFD(tc.fd())
			if err == nil {
				m.Close()
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	checkNoFDLeak(t)
	m, err := New(PageSize)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := m.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
}

func TestNoFDLeakManyMemories(t *testing.T) {
	checkNoFDLeak(t)
	for i := 0; i < 50; i++ {
		g, h := pair(t, 1)
		h.Close()
		g.Close()
	}
}

func TestAdoptFile(t *testing.T) {
	checkNoFDLeak(t)
	g, err := New(2 * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	f, err := g.File()
	if err != nil {
		t.Fatal(err)
	}
	h, err := AdoptFile(f)
	if err != nil {
		t.Fatal(err)
	}
	copy(g.Bytes()[PageSize:], "adopted")
	if !bytes.HasPrefix(h.Bytes()[PageSize:], []byte("adopted")) || h.Pages() != 2 {
		t.Fatal("adopted memory does not share the guest's pages")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	// The Memory closed the adopted file.
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("adopted file still open after Close: %v", err)
	}
	// A refused file is closed too.
	bad := os.NewFile(uintptr(memfd(t, PageSize, 0)), "unsealed")
	if _, err := AdoptFile(bad); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("unsealed memfd: %v", err)
	}
	if err := bad.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("refused file left open: %v", err)
	}
}
