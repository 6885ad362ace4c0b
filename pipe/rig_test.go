package pipe

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/protocol"
)

var (
	testType = protocol.MustParseGUID("5e1f0000-0000-4000-8000-000000000001")
	testInst = protocol.MustParseGUID("5e1f0000-0000-4000-8000-0000000000aa")
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rig is a host's server channel and its guest's client channel, joined
// in-process, with a pipe Conn on each (or a raw server channel, for a
// hostile peer).
type rig struct {
	bus    *testbus.Bus
	sch    *channel.Channel
	cch    *channel.Channel
	server *Conn // nil with a raw server
	client *Conn
}

// rigConfig says what to build.
type rigConfig struct {
	mode       channel.PipeMode
	server     Config
	client     Config
	rawServer  channel.ProcessPacketFunc // the server is no Conn: its packets go here
	ringPages  int                       // the client's rings; 0: the channel's default
	skipWait   bool                      // do not wait for the open
	serverOnly bool                      // no client channel
	// wrapServer, with a Conn server, stands between the channel and the
	// Conn's packet callbacks: it is given them and returns those the
	// channel calls.
	wrapServer func(channel.ProcessPacketFunc, channel.ProcessingCompleteFunc) (channel.ProcessPacketFunc, channel.ProcessingCompleteFunc)
}

func newRig(t testing.TB, cfg rigConfig) *rig {
	t.Helper()
	r := &rig{bus: testbus.New(t, testbus.Config{})}
	r.sch = channel.NewServer()
	must(t, r.sch.SetGuest(r.bus.Guest))
	must(t, r.sch.SetInterface(testType, testInst))
	must(t, r.sch.SetPipeMode(cfg.mode))
	var err error
	if cfg.rawServer != nil {
		must(t, r.sch.SetProcessPacketCallbacks(cfg.rawServer, nil))
	} else {
		r.server, err = New(r.sch, cfg.server)
		must(t, err)
		if cfg.wrapServer != nil {
			must(t, r.sch.SetProcessPacketCallbacks(cfg.wrapServer(r.server.process, r.server.onBatchEnd)))
		}
	}
	r.cch = channel.NewClient()
	must(t, r.cch.SetClient(r.bus.Client))
	must(t, r.cch.SetInterface(testType, testInst))
	if cfg.ringPages != 0 {
		must(t, r.cch.SetRingPages(cfg.ringPages, cfg.ringPages))
	}
	r.client, err = New(r.cch, cfg.client)
	must(t, err)
	t.Cleanup(func() {
		if r.server != nil {
			r.server.Close()
		}
		r.client.Close()
		r.cch.Disable()
		r.sch.Disable()
		r.cch.Cleanup()
		r.sch.Cleanup()
	})
	must(t, r.sch.Enable())
	must(t, r.sch.Start())
	if cfg.serverOnly {
		return r
	}
	must(t, r.cch.Enable())
	if !cfg.skipWait {
		r.waitOpen(t)
	}
	return r
}

// waitOpen waits until both ends are open (their Opened ran).
func (r *rig) waitOpen(t testing.TB) {
	t.Helper()
	conns := []*Conn{r.client}
	if r.server != nil {
		conns = append(conns, r.server)
	}
	for _, c := range conns {
		select {
		case <-c.opened:
		case <-time.After(testbus.Timeout):
			t.Fatal("the pipe channel did not open")
		}
	}
	if r.server == nil {
		testbus.Eventually(t, "the raw server active", func() bool { return r.sch.State() == channel.StateActive })
	}
}
