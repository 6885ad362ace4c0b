package ic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// service saves every server of r mid-traffic and restores them in a
// "successor" (a new host from the saved bus, new servers from their
// chunks), started held and then released, as a servicing host does.
func (r *rig) service(t *testing.T) {
	t.Helper()
	srv := r.servers()
	for _, s := range srv {
		s.StopIndications()
	}
	for _, s := range srv {
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	saved := r.Save(t)
	chunks := make([][][]byte, len(srv))
	for i, s := range srv {
		var err error
		if chunks[i], err = s.Save(); err != nil {
			t.Fatal(err)
		}
	}
	// The old process goes without a word to the guest.
	r.Stop()
	r.closeServers()
	guests := r.Restore(t, host.Config{}, saved)
	g := guests[0]
	var err error
	if r.hb, err = RestorePausedHeartbeatServer(g, quietHeartbeat, chunks[0]); err != nil {
		t.Fatal(err)
	}
	if r.sd, err = RestorePausedShutdownServer(g, Config{}, chunks[1]); err != nil {
		t.Fatal(err)
	}
	if r.ts, err = RestorePausedTimeSyncServer(g, TimeSyncConfig{Interval: -1}, chunks[2]); err != nil {
		t.Fatal(err)
	}
	if r.kvp, err = RestorePausedKVPServer(g, Config{}, chunks[3]); err != nil {
		t.Fatal(err)
	}
	r.Host.Resume()
	held := []interface {
		StartHeld() error
		Release()
	}{r.hb, r.sd, r.ts, r.kvp}
	for _, s := range held {
		if err := s.StartHeld(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range held {
		s.Release()
	}
}

// TestServicingMidRequest services the four servers while a shutdown
// request is in the guest's hands: the successor takes the guest's
// answer, once; the heartbeat sequence goes on; nothing negotiates again;
// KVP works on.
func TestServicingMidRequest(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var mu sync.Mutex
	negotiations := 0
	r := newRig(t, ClientConfig{
		OnShutdown: func(context.Context, *Shutdown) error {
			entered <- struct{}{}
			<-release
			return nil
		},
		OnEvent: func(e Event) {
			if e.Kind == "negotiated" {
				mu.Lock()
				negotiations++
				mu.Unlock()
			}
		},
	})
	// Runs before the rig's cleanups: a failing test must not leave the
	// guest's worker in the callback, which Close waits for.
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo)
	r.negotiated(t)
	ctx := testbus.Context(t)
	for range 3 {
		if _, err := r.hb.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.kvp.Set(ctx, PoolGuest, "before", "servicing"); err != nil {
		t.Fatal(err)
	}
	// A reboot request the guest is still carrying out at the save.
	oldWait := make(chan error, 1)
	go func() {
		_, err := r.sd.Request(ctx, ShutdownRequest{Reboot: true})
		oldWait <- err
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the guest never got the shutdown request")
	}
	r.service(t)
	// The old process's caller is gone with it.
	if err := <-oldWait; !errors.Is(err, ErrClosed) {
		t.Fatalf("the old server's caller: %v", err)
	}
	if st := r.sd.Status(); !st.Pending || !st.Negotiated {
		t.Fatalf("restored shutdown server %+v: want its request pending, negotiated", st)
	}
	letGo()
	testbus.Eventually(t, "the restored server takes the guest's answer", func() bool { return r.sd.Last() != nil })
	if l := r.sd.Last(); !l.OK || l.Action != "reboot" {
		t.Fatalf("answer %+v", l)
	}
	h, err := r.hb.Beat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Sequence != 4 || h.Answers != 4 {
		t.Fatalf("heartbeat after the servicing %+v: want the sequence to go on (4 sent, 4 answered)", h)
	}
	if v, err := r.kvp.Get(ctx, PoolGuest, "before"); err != nil || v != "servicing" {
		t.Fatalf("%q %v", v, err)
	}
	if _, err := r.ts.Send(ctx, TimeFlagSync); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a second answer would come meanwhile
	if n := r.c.Answered(ServiceShutdown); n != 1 {
		t.Fatalf("the guest answered %d shutdown requests, want 1", n)
	}
	for _, s := range r.servers() {
		if st := s.Status(); st.Unexpected != 0 || st.Pending {
			t.Fatalf("%s after the servicing: %+v", st.Service, st)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if negotiations != 4 {
		t.Fatalf("%d negotiations, want 4 (one per service, none after the servicing)", negotiations)
	}
}

// TestRestoreRefusesServiceStateForNone: a service without state of its
// own refuses a saved state that carries some (a heartbeat's, restored as
// another service's, say) and is left as it was; the heartbeat takes its
// own.
func TestRestoreRefusesServiceStateForNone(t *testing.T) {
	hb := bareCore(ServiceHeartbeat)
	hb.extra = (&HeartbeatServer{core: hb, next: 7}).saveExtra
	state := saveOf(t, hb)
	for _, s := range []Service{ServiceShutdown, ServiceTimeSync, ServiceKVP} {
		c := bareCore(s)
		before := saveOf(t, c)
		err := c.restoreState(nil, state)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes of service state for %s, want none", heartbeatExtraSize, services[s].name)) {
			t.Errorf("%s took a heartbeat's state: %v", services[s].name, err)
		}
		if after := saveOf(t, c); !bytes.Equal(after, before) {
			t.Errorf("%s refused the state but saves %x, was %x", services[s].name, after, before)
		}
	}
	if err := bareCore(ServiceHeartbeat).restoreState(nil, state); err != nil {
		t.Fatalf("the heartbeat refuses its own state: %v", err)
	}
}
