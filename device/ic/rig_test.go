package ic

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/testbus"
)

// rig is a host offering the four IC servers to its one guest, and the
// guest's Client.
type rig struct {
	*testbus.Bus
	hb   *HeartbeatServer
	sd   *ShutdownServer
	ts   *TimeSyncServer
	kvp  *KVPServer
	c    *Client
	ccfg ClientConfig
}

// quiet: no automatic beats or samples during a test, so that counts are
// the test's own.
var quietHeartbeat = HeartbeatConfig{Interval: time.Hour}

func newRig(t *testing.T, ccfg ClientConfig) *rig {
	t.Helper()
	r := &rig{ccfg: ccfg}
	r.Bus = testbus.New(t, testbus.Config{Host: host.Config{OnGuest: func(g *host.Guest) {
		var err error
		if r.hb, err = NewHeartbeatServer(g, quietHeartbeat); err != nil {
			t.Error(err)
		}
		if r.sd, err = NewShutdownServer(g, Config{}); err != nil {
			t.Error(err)
		}
		if r.ts, err = NewTimeSyncServer(g, TimeSyncConfig{Interval: -1}); err != nil {
			t.Error(err)
		}
		if r.kvp, err = NewKVPServer(g, Config{}); err != nil {
			t.Error(err)
		}
	}}})
	t.Cleanup(func() { r.closeServers(); r.closeClient() })
	if r.hb == nil || r.sd == nil || r.ts == nil || r.kvp == nil {
		t.FailNow()
	}
	r.openClient(t)
	return r
}

func (r *rig) openClient(t *testing.T) {
	t.Helper()
	var err error
	if r.c, err = OpenClient(r.Client, []Service{ServiceHeartbeat, ServiceShutdown, ServiceTimeSync, ServiceKVP}, r.ccfg); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) closeClient() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}

func (r *rig) closeServers() {
	for _, s := range r.servers() {
		if s != nil {
			s.Close()
		}
	}
}

// servicer is what servicing needs of every server.
type servicer interface {
	StopIndications()
	Pause() error
	Save() ([][]byte, error)
	Close() error
	Status() Status
}

func (r *rig) servers() []servicer {
	var out []servicer
	if r.hb != nil {
		out = append(out, r.hb)
	}
	if r.sd != nil {
		out = append(out, r.sd)
	}
	if r.ts != nil {
		out = append(out, r.ts)
	}
	if r.kvp != nil {
		out = append(out, r.kvp)
	}
	return out
}

// negotiated waits until every server negotiated.
func (r *rig) negotiated(t *testing.T) {
	t.Helper()
	testbus.Eventually(t, "every IC negotiated", func() bool {
		for _, s := range r.servers() {
			if !s.Status().Negotiated {
				return false
			}
		}
		return true
	})
}
