package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/ring"
)

// drain reads every completion in the incoming ring, as read does, but
// reports instead of failing the test, so that it may run on the
// server's receive goroutine. It reports how many it read and whether
// the host was owed (and sent) a signal for the space freed.
func (g *fullGuest) drain() (n int, signalled bool, err error) {
	var p ring.Packet
	for {
		err := g.r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			break
		}
		if err != nil {
			return n, false, err
		}
		if p.Type != ring.TypeCompletion || !bytes.Equal(p.Payload(), guestRequest(p.TransactionID)) {
			return n, false, fmt.Errorf("packet of type %d, transaction %#x: not the echo of a request", p.Type, p.TransactionID)
		}
		g.got[p.TransactionID]++
		n++
	}
	if g.r.Commit() {
		return n, true, g.ch.ToHost.Signal()
	}
	return n, false, nil
}

// TestFullRingMidBatchWakes: a server whose completions fill the guest's
// ring in the middle of a receive batch asks the guest, with the pending
// send size, to signal once there is room; the completions the batch
// wrote are published only when the batch ends. If the guest reads what
// the ring held before the batch in between, the guest must still be
// asked to signal when it frees the room, or the server's queue waits
// for ever. This is the first batch of a servicing's successor: the guest,
// signalled only as the successor releases the channel, reads what the
// predecessor wrote while the successor's batch fills the rest.
func TestFullRingMidBatchWakes(t *testing.T) {
	leakcheck.Check(t)
	const (
		// A one-page ring holds 46 completions of 64 bytes (88 with
		// descriptor and footer); its pending send size is at least a
		// quarter of the ring, 1024 bytes.
		old   = 30 // completions in the ring before the batch: 2,640 bytes
		batch = 40 // requests of the batch: 16 completions fit, 24 queue
	)
	s := newSvc(t)
	var processed atomic.Int32
	process := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		processed.Add(1)
		p.Complete(payload)
	}
	s.server = configure(t, s.Guest, newVSP(), process)
	must(t, s.server.SetMaxPacketCount(old+batch))
	must(t, s.server.Enable())
	must(t, s.server.Start())
	g := openFullGuest(t, s, 2)
	defer g.close()
	g.send(t, 1, old)
	eventually(t, "the first completions in the guest's ring", func() bool {
		c, err := ring.Inspect(g.ch.In)
		return err == nil && int(c.WriteIndex) == old*88
	})

	// The hook runs on the receive goroutine before its read finds the
	// ring empty: after the batch's last completion queued, before the
	// batch ends and publishes what it wrote.
	type drained struct {
		n   int
		sig bool
		err error
	}
	mid := make(chan drained, 1)
	var fired atomic.Bool
	hook := func(c *Channel) {
		if c != s.server || processed.Load() != old+batch || !c.sendQueued() || !fired.CompareAndSwap(false, true) {
			return
		}
		n, sig, err := g.drain()
		mid <- drained{n, sig, err}
	}
	testHookBeforeRead.Store(&hook)
	defer testHookBeforeRead.Store(nil)
	g.send(t, old+1, old+batch)
	var first drained
	select {
	case first = <-mid:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch did not end with completions queued")
	}
	must(t, first.err)
	if first.n != old {
		t.Fatalf("the guest read %d completions during the batch, want the %d from before it", first.n, old)
	}
	eventually(t, "the batch's completions published", func() bool {
		c, err := ring.Inspect(g.ch.In)
		return err == nil && c.WriteIndex != c.ReadIndex
	})
	n, sig, err := g.drain()
	must(t, err)
	if !first.sig && !sig {
		t.Fatalf("the guest read the ring empty (%d completions, then %d), and no read asked it to signal the server, whose queue holds %d completions",
			first.n, n, old+batch-len(g.got))
	}

	// The rest arrives as the guest goes on reading.
	deadline := time.Now().Add(10 * time.Second)
	for len(g.got) < old+batch && time.Now().Before(deadline) {
		if g.read(t) == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			g.ch.FromHost.Wait(ctx) //nolint:errcheck // a timeout only means: look again
			cancel()
		}
	}
	if len(g.got) != old+batch {
		t.Fatalf("%d completions of %d reached the guest", len(g.got), old+batch)
	}
}
