package blk

import (
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestReadWriteAllocatesNothing: a READ and a WRITE cost no allocation on
// either end once the first of each has run: the client's call and its
// timer are reused, the server's response buffer is its own, and the
// packet's view of the guest's pages is the packet's.
func TestReadWriteAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	leakcheck.Check(t)
	r := newRig(t, 1<<20, ServerConfig{}, ClientConfig{})
	buf := make([]byte, 4096)
	for _, op := range []struct {
		name string
		do   func()
	}{
		{"ReadAt", func() {
			if _, err := r.d.ReadAt(buf, 8192); err != nil {
				t.Fatal(err)
			}
		}},
		{"WriteAt", func() {
			if _, err := r.d.WriteAt(buf, 8192); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		op.do()
		if n := testing.AllocsPerRun(200, op.do); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", op.name, n)
		}
	}
}
