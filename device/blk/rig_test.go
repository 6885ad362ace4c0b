package blk

import (
	"os"
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
)

// rig is a host offering a blk Server over a temporary file to its one
// guest, and the guest's Disk.
type rig struct {
	*testbus.Bus
	srv  *Server
	d    *Disk
	file *os.File
}

func newRig(t testing.TB, size int64, scfg ServerConfig, ccfg ClientConfig) *rig {
	return newRigWith(t, size, scfg, ccfg, nil)
}

// newRigWith is newRig whose server serves wrap(file) (the file itself if
// wrap is nil).
func newRigWith(t testing.TB, size int64, scfg ServerConfig, ccfg ClientConfig, wrap func(*os.File) Backend) *rig {
	t.Helper()
	r := &rig{}
	f, err := os.CreateTemp(t.TempDir(), "disk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // after the bus's, which close the server's users
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r.file = f
	scfg.Size = size
	var be Backend = f
	if wrap != nil {
		be = wrap(f)
	}
	r.Bus = testbus.New(t, testbus.Config{Host: host.Config{OnGuest: func(g *host.Guest) {
		var err error
		if r.srv, err = NewServer(g, be, scfg); err != nil {
			t.Error(err)
		}
	}}})
	t.Cleanup(func() {
		if r.d != nil {
			r.d.Close()
		}
		if r.srv != nil {
			r.srv.Close()
		}
	})
	if r.srv == nil {
		t.FailNow()
	}
	if r.d, err = Open(testbus.Context(t), r.Client, ccfg); err != nil {
		t.Fatal(err)
	}
	return r
}
