package channel

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
)

// TestWaitSendSpace: against a full ring (the server holds its packets
// and stops reading) WaitSendSpace blocks until its context ends; once
// the server completes what it holds and reads on, every waiter (two
// here) returns and the send it waited for fits. A channel that closes
// under a waiter ends the wait with StatusInvalidDeviceState.
func TestWaitSendSpace(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var mu sync.Mutex
	var held []*Packet
	hold := true
	proc := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		mu.Lock()
		defer mu.Unlock()
		if hold {
			held = append(held, p)
			return
		}
		p.Complete(nil)
	}
	completeHeld := func(keepHolding bool) {
		mu.Lock()
		h := held
		held, hold = nil, keepHolding
		mu.Unlock()
		for _, p := range h {
			p.Complete(nil)
		}
	}
	releaseAll := func() { completeHeld(false) }
	t.Cleanup(releaseAll)
	// At the close the server completes what it holds (its packets
	// stopped: nothing more is read).
	s := r.newServer(t, proc, StateCallbacks{Suspend: func(*Channel) { completeHeld(true) }})
	must(t, s.SetMaxPacketCount(2))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 2))
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)

	msg := make([]byte, 1000)
	// full fills the ring and shows a WaitSendSpace blocked on it until
	// its deadline. The server reads two packets before it stops and
	// publishes its read index a moment later: a wait that finds the
	// room that freed is not an error, and the fill goes on.
	full := func() {
		t.Helper()
		for try := 0; ; try++ {
			for i := 0; ; i++ {
				err := c.TrySendParts(0, msg[:8], msg[8:])
				if errors.Is(err, StatusBufferOverflow) {
					break
				}
				must(t, err)
				if i > 1000 {
					t.Fatal("the ring never filled")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := c.WaitSendSpace(ctx, len(msg))
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if err != nil || try > 100 {
				t.Fatalf("WaitSendSpace on a full ring: %v, want the context's deadline", err)
			}
		}
	}
	full()
	if err := c.WaitSendSpace(context.Background(), MTU); !errors.Is(err, StatusInvalidBufferSize) {
		t.Fatalf("WaitSendSpace past the MTU: %v", err)
	}

	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- c.WaitSendSpace(testbus.Context(t), len(msg)) }()
	}
	testbus.Eventually(t, "two waiters", func() bool { return c.spaceWaiters.Load() == 2 })
	releaseAll()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("WaitSendSpace after the reader read: %v", err)
		}
	}
	must(t, c.TrySendParts(0, msg))

	// Closed under a waiter: fill the ring again, then disable.
	mu.Lock()
	hold = true
	mu.Unlock()
	full()
	go func() { errs <- c.WaitSendSpace(testbus.Context(t), len(msg)) }()
	testbus.Eventually(t, "a waiter", func() bool {
		select {
		case err := <-errs:
			t.Fatalf("waiter returned %v", err)
		default:
		}
		return c.spaceWaiters.Load() == 1
	})
	must(t, c.Disable())
	if err := <-errs; !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("WaitSendSpace on a channel that closed: %v", err)
	}
}

// TestWaitSendSpaceBeforeOpen: on an enabled client channel not open yet,
// WaitSendSpace waits for the open instead of failing; on a disabled one
// it fails.
func TestWaitSendSpaceBeforeOpen(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, ignore, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})
	if err := c.WaitSendSpace(context.Background(), 8); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("WaitSendSpace on a disabled channel: %v", err)
	}
	must(t, c.Enable()) // waits for the offer
	errs := make(chan error, 1)
	go func() { errs <- c.WaitSendSpace(testbus.Context(t), 8) }()
	testbus.Eventually(t, "a waiter", func() bool { return c.spaceWaiters.Load() == 1 })
	must(t, s.Enable())
	must(t, s.Start())
	if err := <-errs; err != nil {
		t.Fatalf("WaitSendSpace across the open: %v", err)
	}
}

// TestPipeMode: SetPipeMode puts the named-pipe flag and the mode on the
// wire, and the client reads both from its offer; IS_PIPE alone is byte
// mode; a channel without either is no pipe.
func TestPipeMode(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name   string
		set    func(*Channel) error
		mode   PipeMode
		isPipe bool
	}{
		{"none", func(*Channel) error { return nil }, PipeByte, false},
		{"message", func(s *Channel) error { return s.SetPipeMode(PipeMessage) }, PipeMessage, true},
		{"byte", func(s *Channel) error { return s.SetPipeMode(PipeByte) }, PipeByte, true},
		{"is-pipe", func(s *Channel) error { return s.SetFlags(ChannelFlagIsPipe) }, PipeByte, true},
		{"offer-as-pipe", func(s *Channel) error { return s.SetServerFlags(ServerOfferAsPipe) }, PipeByte, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			var txid uint64
			var got []byte
			done := make(chan struct{})
			s := r.newServer(t, func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
				txid, got = p.TransactionID(), append([]byte(nil), payload...)
				p.Complete(nil)
				close(done)
			}, StateCallbacks{})
			must(t, tc.set(s))
			if m, ok := s.PipeMode(); m != tc.mode || ok != tc.isPipe {
				t.Fatalf("server PipeMode = %v, %v; want %v, %v", m, ok, tc.mode, tc.isPipe)
			}
			c := r.newClient(t, ignore, StateCallbacks{})
			must(t, s.Enable())
			must(t, s.Start())
			must(t, c.Enable())
			waitState(t, c, StateActive)
			if m, ok := c.PipeMode(); m != tc.mode || ok != tc.isPipe {
				t.Fatalf("client PipeMode = %v, %v; want %v, %v", m, ok, tc.mode, tc.isPipe)
			}
			must(t, c.TrySendParts(0, []byte("head"), []byte("tail")))
			<-done
			if txid != 0 || string(got) != "headtail" {
				t.Fatalf("TrySendParts arrived as txid %#x, %q", txid, got)
			}
		})
	}
	if err := NewClient().SetPipeMode(PipeMessage); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("SetPipeMode on a client: %v", err)
	}
	if err := NewServer().SetPipeMode(3); !errors.Is(err, StatusInvalidParameter2) {
		t.Fatalf("SetPipeMode(3): %v", err)
	}
}
