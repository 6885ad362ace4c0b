package ic

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

func TestHeartbeatSequence(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ClientConfig{})
	r.negotiated(t)
	ctx := testbus.Context(t)
	for i := range 5 {
		h, err := r.hb.Beat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h.Answers != uint64(i+1) || h.State != "ok" || h.Sequence != uint64(i+1) {
			t.Fatalf("beat %d: %+v", i, h)
		}
	}
	if st := r.hb.Status(); st.Versions != "3.0/3.0" || st.Unexpected != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestShutdownRunsCallback(t *testing.T) {
	leakcheck.Check(t)
	var mu sync.Mutex
	var got []*Shutdown
	fail := false
	r := newRig(t, ClientConfig{OnShutdown: func(_ context.Context, s *Shutdown) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, s)
		if fail {
			return errors.New("refused")
		}
		return nil
	}})
	r.negotiated(t)
	ctx := testbus.Context(t)
	res, err := r.sd.Request(ctx, ShutdownRequest{Reboot: true, Message: "maintenance ✓", Timeout: 30 * time.Second})
	if err != nil || !res.OK || res.Action != "reboot" {
		t.Fatalf("%+v %v", res, err)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	res, err = r.sd.Request(ctx, ShutdownRequest{Hibernate: true})
	if err != nil || res.OK || res.Status != StatusFail {
		t.Fatalf("failing command: %+v %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Message != "maintenance ✓" || got[0].Timeout != 30 || got[0].Flags != ShutdownRestart || got[0].Reason != ReasonPlanned {
		t.Fatalf("callback saw %+v", got)
	}
}

func TestTimeSyncOffset(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ClientConfig{})
	r.negotiated(t)
	s, err := r.ts.Send(testbus.Context(t), TimeFlagSample)
	if err != nil {
		t.Fatal(err)
	}
	if st := r.ts.Status(); st.Versions != "3.0/4.0" || s.Reference == 0 {
		t.Fatalf("%+v %+v", st, s)
	}
	// One machine, one clock: the offset is the transit, far below a
	// second even on a loaded machine.
	if off := r.c.Offset(); off > time.Second || off < -time.Second {
		t.Fatalf("offset %v", off)
	}
}

func TestKVPPools(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	r := newRig(t, ClientConfig{KVPDir: dir})
	r.negotiated(t)
	ctx := testbus.Context(t)
	for p := range uint8(Pools) {
		if p == PoolAuto {
			continue
		}
		if err := r.kvp.Set(ctx, p, "clé", "välue"); err != nil {
			t.Fatal(err)
		}
		if v, err := r.kvp.Get(ctx, p, "clé"); err != nil || v != "välue" {
			t.Fatalf("pool %d: %q %v", p, v, err)
		}
	}
	if err := r.kvp.Set(ctx, PoolExternal, "second", "2"); err != nil {
		t.Fatal(err)
	}
	list, err := r.kvp.List(ctx, PoolExternal)
	if err != nil || !slices.Equal(list, []KV{{"clé", "välue"}, {"second", "2"}}) {
		t.Fatalf("%v %v", list, err)
	}
	if err := r.kvp.Delete(ctx, PoolExternal, "clé"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.kvp.Get(ctx, PoolExternal, "clé"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if auto, err := r.kvp.List(ctx, PoolAuto); err != nil || len(auto) == 0 {
		t.Fatalf("auto pool %v %v", auto, err)
	}
	// The guest restarts: its pools come back from the files.
	r.closeClient()
	r.openClient(t)
	r.negotiated(t)
	if v, err := r.kvp.Get(ctx, PoolExternal, "second"); err != nil || v != "2" {
		t.Fatalf("after a restart of the guest: %q %v", v, err)
	}
}

// TestIncompatibleStaysUsable: a guest without a common version gets a
// clear error, the channel stays open, and a later Negotiate (with a
// guest that changed its mind) succeeds.
func TestIncompatibleStaysUsable(t *testing.T) {
	leakcheck.Check(t)
	var mu sync.Mutex
	hb := []Version{{9, 9}}
	r := newRig(t, ClientConfig{Messages: func(s Service) []Version {
		mu.Lock()
		defer mu.Unlock()
		if s == ServiceHeartbeat {
			return hb
		}
		return nil
	}})
	testbus.Eventually(t, "the heartbeat found no common version", func() bool { return r.hb.Status().Incompatible })
	ctx := testbus.Context(t)
	if _, err := r.hb.Beat(ctx); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("beat without a common version: %v", err)
	}
	if h := r.hb.Health(); h.State != "incompatible" {
		t.Fatalf("%+v", h)
	}
	mu.Lock()
	hb = []Version{{3, 0}} // the guest is updated
	mu.Unlock()
	if err := r.hb.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.hb.Beat(ctx); err != nil {
		t.Fatal(err)
	}
}
