package echo

import (
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
)

// rig is a host offering an echo Server to its one guest, and the guest's
// Client.
type rig struct {
	*testbus.Bus
	srv *Server
	c   *Client
}

func newRig(t testing.TB, scfg ServerConfig, ccfg ClientConfig) *rig {
	t.Helper()
	r := &rig{}
	r.Bus = testbus.New(t, testbus.Config{Host: host.Config{OnGuest: func(g *host.Guest) {
		var err error
		if r.srv, err = NewServer(g, scfg); err != nil {
			t.Error(err)
		}
	}}})
	t.Cleanup(func() {
		if r.c != nil {
			r.c.Close()
		}
		if r.srv != nil {
			r.srv.Close()
		}
	})
	if r.srv == nil {
		t.FailNow()
	}
	var err error
	if r.c, err = Open(testbus.Context(t), r.Client, ccfg); err != nil {
		t.Fatal(err)
	}
	return r
}
