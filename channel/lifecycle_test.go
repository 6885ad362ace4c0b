package channel

import (
	"bytes"
	"errors"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/protocol"
)

func TestSettersOnlyWhileDisabled(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, ignore, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})
	if err := s.SetMaxPacketSize(0); !errors.Is(err, StatusInvalidParameter2) {
		t.Fatalf("max packet size 0: %v", err)
	}
	must(t, s.SetFriendlyName("one"))
	if err := s.SetFriendlyName("two"); err == nil {
		t.Fatal("friendly name set twice")
	}
	if err := s.SetRingPages(4, 4); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("ring pages on a server: %v", err)
	}
	if err := c.SetGuest(r.guest); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("guest on a client: %v", err)
	}
	must(t, s.Enable())
	must(t, c.Enable())
	for _, ch := range []*Channel{s, c} {
		setters := map[string]error{
			"MaxPacketSize":     ch.SetMaxPacketSize(100),
			"MaxPacketCount":    ch.SetMaxPacketCount(8),
			"MaxExternalData":   ch.SetMaxExternalData(4096, 1),
			"PacketContextSize": ch.SetPacketContextSize(8),
			"ProcessPacket":     ch.SetProcessPacketCallbacks(ignore, nil),
			"StateCallbacks":    ch.SetStateCallbacks(StateCallbacks{}),
			"FriendlyName":      ch.SetFriendlyName("x"),
			"Flags":             ch.SetFlags(ChannelFlagIsPipe),
			"Primary":           ch.SetPrimary(NewServer(), 1),
			"Blocking":          ch.SetBlockingProcessing(true),
			"InPlace":           ch.SetInPlacePayloads(true),
			"RingPages":         ch.SetRingPages(4, 4),
			"TargetProcessor":   ch.SetTargetProcessor(1),
			"Interface":         ch.SetInterface(testType, protocol.GUID{}),
			"Client":            ch.SetClient(r.cl),
			"Guest":             ch.SetGuest(r.guest),
			"ServerFlags":       ch.SetServerFlags(ServerLoopbackOffer),
			"MMIO":              ch.SetMMIO(1, 0),
			"UserDefined":       ch.SetUserDefined(protocol.UserDefined{}),
		}
		for name, err := range setters {
			if !errors.Is(err, StatusInvalidParameter1) || StatusOf(err) != 0xC00000EF {
				t.Errorf("%v %s after Enable: %v", ch.IsServer(), name, err)
			}
		}
	}
	if err := s.Enable(); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("second Enable: %v", err)
	}
	must(t, c.Disable())
	must(t, s.Disable())
	// Disabled again: setters work.
	must(t, s.SetMaxPacketCount(8))
}

func TestCallbackOrder(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var srec, crec recorder
	s, c := r.pair(t, ignore, ignore, srec.callbacks(), crec.callbacks())
	must(t, c.Pause())
	must(t, c.Start())
	must(t, s.Pause())
	must(t, s.Start())
	must(t, c.Disable())
	waitState(t, s, StateStarted)
	if got, want := crec.String(), "Opened,Started,PostStarted,Suspend,Started,PostStarted,Suspend,Closed"; got != want {
		t.Fatalf("client: %s, want %s", got, want)
	}
	if got, want := srec.String(), "Opened,Started,PostStarted,Suspend,Started,PostStarted,Suspend,Closed"; got != want {
		t.Fatalf("server: %s, want %s", got, want)
	}
	must(t, s.Disable())
}

func TestServerNeedsStart(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var got atomic.Int32
	var srec recorder
	s := r.newServer(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { got.Add(1); p.Complete(nil) }, srec.callbacks())
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	if s.State() != StateEnabled {
		t.Fatalf("server %v", s.State())
	}
	must(t, c.Enable())
	waitState(t, c, StateActive)
	waitState(t, s, StateStopped)
	p, err := c.AllocatePacket()
	must(t, err)
	must(t, p.Send([]byte("early"), 0))
	time.Sleep(30 * time.Millisecond)
	if got.Load() != 0 || srec.String() != "Opened" {
		t.Fatalf("packets flowed before Start: %d, callbacks %s", got.Load(), srec.String())
	}
	must(t, s.Start())
	waitState(t, s, StateActive)
	eventually(t, "packet after Start", func() bool { return got.Load() == 1 })
	if srec.String() != "Opened,Started,PostStarted" {
		t.Fatalf("callbacks %s", srec.String())
	}
}

func TestLifecycleInsideCallbackRefused(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	errs := make(chan error, 8)
	cb := StateCallbacks{
		Started: func(c *Channel) {
			errs <- c.Pause()
			errs <- c.Disable()
		},
		PostStarted: func(c *Channel) { errs <- c.Start() },
		Opened:      func(c *Channel) error { errs <- c.Enable(); return nil },
	}
	r.pair(t, ignore, ignore, StateCallbacks{}, cb)
	for range 4 {
		if err := <-errs; !errors.Is(err, StatusInvalidDeviceState) {
			t.Fatalf("lifecycle call inside a callback: %v", err)
		}
	}
}

func TestOpenedFailureRollsBack(t *testing.T) {
	leakcheck.Check(t)
	t.Run("client", func(t *testing.T) {
		r := newRig(t)
		var got atomic.Int32
		var srec recorder
		s := r.newServer(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { got.Add(1); p.Complete(nil) }, srec.callbacks())
		c := r.newClient(t, ignore, StateCallbacks{Opened: func(*Channel) error { return errors.New("no") }})
		must(t, s.Enable())
		must(t, s.Start())
		must(t, c.Enable())
		waitState(t, c, StateClosed)
		if _, err := c.SendSynchronousRequest([]byte("x"), nil, 0, nil, NoTimeout); !errors.Is(err, StatusInvalidDeviceState) {
			t.Fatalf("send on a closed channel: %v", err)
		}
		// The server saw the open and the close.
		eventually(t, "server closed", func() bool { return srec.String() == "Opened,Started,PostStarted,Suspend,Closed" })
		must(t, c.Disable())
		must(t, s.Disable())
	})
	t.Run("server", func(t *testing.T) {
		r := newRig(t)
		s := r.newServer(t, ignore, StateCallbacks{Opened: func(*Channel) error { return errors.New("no") }})
		c := r.newClient(t, ignore, StateCallbacks{})
		must(t, s.Enable())
		must(t, s.Start())
		must(t, c.Enable())
		waitState(t, c, StateClosed)
		if s.State() != StateStarted {
			t.Fatalf("server %v after a failed open", s.State())
		}
		must(t, s.Disable())
		must(t, c.Disable())
	})
}

func TestDisableFromEveryState(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	server := func(t *testing.T, to func(s, c *Channel)) {
		var srec recorder
		s := r.newServer(t, ignore, srec.callbacks())
		c := r.newClient(t, ignore, StateCallbacks{})
		to(s, c)
		must(t, s.Disable())
		if s.State() != StateDisabled {
			t.Fatalf("state %v after Disable", s.State())
		}
		if l := srec.String(); l != "" && l != "Opened" && !hasSuffix(l, "Closed") {
			t.Fatalf("callbacks %s", l)
		}
		must(t, c.Disable())
		must(t, s.Cleanup())
		if err := s.Enable(); !errors.Is(err, StatusInvalidDeviceState) {
			t.Fatalf("Enable after Cleanup: %v", err)
		}
	}
	t.Run("server disabled", func(t *testing.T) { server(t, func(s, c *Channel) {}) })
	t.Run("server enabled", func(t *testing.T) { server(t, func(s, c *Channel) { must(t, s.Enable()) }) })
	t.Run("server started", func(t *testing.T) {
		server(t, func(s, c *Channel) { must(t, s.Enable()); must(t, s.Start()); waitState(t, s, StateStarted) })
	})
	t.Run("server stopped", func(t *testing.T) {
		server(t, func(s, c *Channel) { must(t, s.Enable()); must(t, c.Enable()); waitState(t, s, StateStopped) })
	})
	t.Run("server active", func(t *testing.T) {
		server(t, func(s, c *Channel) {
			must(t, s.Enable())
			must(t, s.Start())
			must(t, c.Enable())
			waitState(t, s, StateActive)
		})
	})
	t.Run("server paused", func(t *testing.T) {
		server(t, func(s, c *Channel) {
			must(t, s.Enable())
			must(t, s.Start())
			must(t, c.Enable())
			waitState(t, s, StateActive)
			must(t, s.Pause())
			waitState(t, s, StatePaused)
		})
	})

	client := func(t *testing.T, to func(s, c *Channel)) {
		var crec recorder
		s := r.newServer(t, ignore, StateCallbacks{})
		c := r.newClient(t, ignore, crec.callbacks())
		to(s, c)
		must(t, c.Disable())
		if c.State() != StateDisabled {
			t.Fatalf("state %v after Disable", c.State())
		}
		if l := crec.String(); l != "" && !hasSuffix(l, "Suspend,Closed") {
			t.Fatalf("callbacks %s", l)
		}
		must(t, s.Disable())
		must(t, c.Cleanup())
	}
	t.Run("client disabled", func(t *testing.T) { client(t, func(s, c *Channel) {}) })
	t.Run("client enabled, no offer", func(t *testing.T) {
		client(t, func(s, c *Channel) { must(t, c.Enable()); time.Sleep(10 * time.Millisecond) })
	})
	t.Run("client active", func(t *testing.T) {
		client(t, func(s, c *Channel) { must(t, s.Enable()); must(t, c.Enable()); waitState(t, c, StateActive) })
	})
	t.Run("client paused", func(t *testing.T) {
		client(t, func(s, c *Channel) {
			must(t, s.Enable())
			must(t, c.Enable())
			waitState(t, c, StateActive)
			must(t, c.Pause())
			waitState(t, c, StatePaused)
		})
	})
	t.Run("client closed by rescind", func(t *testing.T) {
		client(t, func(s, c *Channel) {
			must(t, s.Enable())
			must(t, c.Enable())
			waitState(t, c, StateActive)
			must(t, s.Disable())
			waitState(t, c, StateClosed)
		})
	})
}

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

func TestSendsFromStartedAndPostStarted(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	got := make(chan string, 4)
	syncErr := make(chan error, 2)
	scb := StateCallbacks{
		Started: func(s *Channel) {
			// May queue sends; must not wait for the peer.
			p, err := s.AllocatePacket()
			if err != nil {
				t.Error(err)
				return
			}
			p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { p.Free() })
			if err := p.Send([]byte("from Started"), 0); err != nil {
				t.Error(err)
			}
		},
		PostStarted: func(s *Channel) {
			// A server's synchronous request does not wait for the
			// guest: zero timeout, no completion.
			n, err := s.SendSynchronousRequest([]byte("from PostStarted"), nil, 0, nil, 0)
			if err == nil && n != 0 {
				err = errors.New("a server's synchronous request got an answer")
			}
			syncErr <- err
		},
	}
	cproc := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		got <- string(bytes.TrimRight(payload, "\x00"))
		p.Complete(payload)
	}
	ccb := StateCallbacks{PostStarted: func(c *Channel) {
		_, err := c.SendSynchronousRequest([]byte("client sync"), nil, 0, nil, 5*time.Second)
		syncErr <- err
	}}
	r.pair(t, echo, cproc, scb, ccb)
	must(t, <-syncErr)
	must(t, <-syncErr)
	if a, b := <-got, <-got; a != "from Started" || b != "from PostStarted" {
		t.Fatalf("client got %q then %q", a, b)
	}
}

func TestLifecycleFromOtherGoroutineWaitsForCallback(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	release := make(chan struct{})
	inStarted := make(chan struct{})
	scb := StateCallbacks{Started: func(*Channel) {
		close(inStarted)
		<-release
	}}
	s := r.newServer(t, ignore, scb)
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	must(t, c.Enable())
	waitState(t, s, StateStopped)
	startErr := make(chan error, 1)
	go func() { startErr <- s.Start() }()
	<-inStarted
	pauseErr := make(chan error, 1)
	go func() { pauseErr <- s.Pause() }()
	select {
	case err := <-pauseErr:
		t.Fatalf("Pause did not wait for the callback: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(release)
	must(t, <-startErr)
	must(t, <-pauseErr)
	if s.State() != StatePaused {
		t.Fatalf("state %v", s.State())
	}
	must(t, c.Disable())
	must(t, s.Disable())
}

// TestLifecycleDuringCallbackFromElsewhereWaits: a lifecycle call from
// another goroutine while a state callback runs is not refused (the
// worker's identity is read lazily, at its first callback): it waits for
// the lifecycle call under way and then succeeds.
func TestLifecycleDuringCallbackFromElsewhereWaits(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	started := make(chan error, 1)
	var once sync.Once
	cb := StateCallbacks{Suspend: func(c *Channel) {
		once.Do(func() {
			go func() { started <- c.Start() }()
			time.Sleep(20 * time.Millisecond) // Start is waiting by now
		})
	}}
	s, _ := r.pair(t, ignore, ignore, cb, StateCallbacks{})
	must(t, s.Pause())
	select {
	case err := <-started:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Start from another goroutine did not return")
	}
	waitState(t, s, StateActive)
}

// A worker whose channel has state callbacks reads its goroutine id a
// while after it starts (outside a servicing's blackout), not in its
// first callback; one without callbacks never reads it. A lifecycle call
// from a callback that comes after is still refused.
func TestWorkerLearnsIDUnasked(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	errs := make(chan error, 1)
	cb := StateCallbacks{Suspend: func(c *Channel) { errs <- c.Start() }}
	s, plain := r.pair(t, ignore, ignore, cb, StateCallbacks{})
	eventually(t, "the worker's id", func() bool { return s.workerID.Load() != 0 })
	if s.inCallback.Load() != 0 {
		t.Fatal("a callback runs")
	}
	time.Sleep(workerIDDelay + 50*time.Millisecond)
	if id := plain.workerID.Load(); id != 0 {
		t.Fatalf("worker of a channel without callbacks read its id: %d", id)
	}
	must(t, s.Pause())
	if err := <-errs; !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("Start inside Suspend: %v", err)
	}
}

// TestSetterArgumentStatuses checks the argument errors of the setters
// against the codes their KMCL pages document: the n-th parameter of the
// C function (the channel is the first) fails with
// STATUS_INVALID_PARAMETER_n.
func TestSetterArgumentStatuses(t *testing.T) {
	s := NewServer()
	cases := []struct {
		name string
		err  error
		want Status
	}{
		{"SetMaxPacketSize(0)", s.SetMaxPacketSize(0), StatusInvalidParameter2},
		{"SetMaxExternalData(0, 1)", s.SetMaxExternalData(0, 1), StatusInvalidParameter2},
		{"SetMaxExternalData(1, 0)", s.SetMaxExternalData(1, 0), StatusInvalidParameter3},
		{"SetFlags(0x2)", s.SetFlags(0x2), StatusInvalidParameter2},
		{"SetServerFlags(0x20)", s.SetServerFlags(0x20), StatusInvalidParameter2},
		{"SetMMIO(0, 0)", s.SetMMIO(0, 0), StatusInvalidParameter},
		{"SetTransactionQuota(0)", s.SetTransactionQuota(0), StatusInvalidParameter2},
	}
	for _, tc := range cases {
		if got := StatusOf(tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	must(t, s.SetTransactionQuota(1))
	must(t, s.SetMMIO(0, 1))
}

// TestPauseBeforeEnableArmsPausedStart: KMCL's Pause on a disabled channel
// sets it to come up paused when enabled, where it used to be refused.
func TestPauseBeforeEnableArmsPausedStart(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var slog, clog recorder
	s := r.newServer(t, echo, slog.callbacks())
	c := r.newClient(t, echo, clog.callbacks())
	must(t, s.Pause())
	must(t, c.Pause())
	must(t, s.Enable())
	must(t, c.Enable())
	eventually(t, "both ends opened", func() bool { return clog.String() != "" && slog.String() != "" })
	waitState(t, c, StatePaused)
	waitState(t, s, StatePaused)
	// Started would have run with Opened, on the same worker: had it
	// been due, it would be in the log now.
	c.Pause() //nolint:errcheck // a paused channel: waits for its worker only
	s.Pause() //nolint:errcheck // as above
	if got := clog.String(); got != "Opened" {
		t.Fatalf("client callbacks of a paused start: %q, want only Opened", got)
	}
	if got := slog.String(); got != "Opened" {
		t.Fatalf("server callbacks of a paused start: %q, want only Opened", got)
	}
	must(t, s.Start())
	must(t, c.Start())
	waitState(t, c, StateActive)
	waitState(t, s, StateActive)
	resp := make([]byte, 8)
	n, err := c.SendSynchronousRequest([]byte("started!"), nil, 0, resp, 10*time.Second)
	if err != nil || string(resp[:n]) != "started!" {
		t.Fatalf("after Start: %q, %v", resp[:n], err)
	}
	// Armed once: Disable and Enable again start as usual.
	must(t, c.Disable())
	must(t, c.Enable())
	waitState(t, c, StateActive)
}
