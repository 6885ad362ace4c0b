package echo

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/transport"
)

// rig is a host offering an echo Server to its one guest, and the guest's
// Client, over transport.Pipe.
type rig struct {
	srv *Server
	cl  *guest.Client
	c   *Client
}

func newRig(t testing.TB, scfg ServerConfig, ccfg ClientConfig) *rig {
	t.Helper()
	r := &rig{}
	srvs := make(chan *Server, 1)
	h := host.New(host.Config{OnGuest: func(g *host.Guest) {
		s, err := NewServer(g, scfg)
		if err != nil {
			t.Error(err)
		}
		srvs <- s
	}})
	hc, gc, err := transport.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.ServeConn(hc)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.cl, err = guest.New(ctx, gc, guest.Config{MemorySize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = <-srvs
	t.Cleanup(func() {
		if r.c != nil {
			r.c.Close()
		}
		if r.srv != nil {
			r.srv.Close()
		}
		r.cl.Close()
		h.Close()
		wg.Wait()
	})
	if r.srv == nil {
		t.FailNow()
	}
	r.c, err = Open(ctx, r.cl, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
