package blk

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/transport"
)

// rig is a host offering a blk Server over a temporary file to its one
// guest, and the guest's Disk, over transport.Pipe.
type rig struct {
	srv  *Server
	cl   *guest.Client
	d    *Disk
	file *os.File
	h    *host.Host
	wg   sync.WaitGroup // ServeConn
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
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r.file = f
	scfg.Size = size
	var be Backend = f
	if wrap != nil {
		be = wrap(f)
	}
	srvs := make(chan *Server, 1)
	r.h = host.New(host.Config{OnGuest: func(g *host.Guest) {
		s, err := NewServer(g, be, scfg)
		if err != nil {
			t.Error(err)
		}
		srvs <- s
	}})
	hc, gc, err := transport.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.h.ServeConn(hc)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.cl, err = guest.New(ctx, gc, guest.Config{MemorySize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = <-srvs
	t.Cleanup(func() {
		if r.d != nil {
			r.d.Close()
		}
		if r.srv != nil {
			r.srv.Close()
		}
		r.cl.Close()
		r.h.Close()
		r.wg.Wait()
		f.Close()
	})
	if r.srv == nil {
		t.FailNow()
	}
	r.d, err = Open(ctx, r.cl, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
