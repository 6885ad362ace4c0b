package channel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/ring"
)

// fullGuest is a guest driver that drives its channel's rings itself, as
// a guest kernel's ring code does: it writes requests with completions
// requested, and reads its incoming ring only when told to.
type fullGuest struct {
	ch  *guest.Channel
	w   *ring.Writer
	r   *ring.Reader
	got map[uint64]int // completions read, by transaction id
}

// openFullGuest opens the channel of s's server with an incoming ring of
// inPages pages (control page included). The caller defers close: the
// channel must be closed before the servers' cleanups, whose rescind
// waits for it.
func openFullGuest(t *testing.T, s *svc, inPages int) *fullGuest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := s.Client.WaitOffer(ctx, testType, testInst)
	must(t, err)
	ch, err := s.Client.Open(ctx, o, guest.OpenOptions{OutPages: 16, InPages: inPages})
	must(t, err)
	g := &fullGuest{ch: ch, got: make(map[uint64]int)}
	g.w, err = ring.NewWriter(ch.Out)
	must(t, err)
	g.r, err = ring.NewReader(ch.In)
	must(t, err)
	return g
}

// close closes the guest's channel.
func (g *fullGuest) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.ch.Close(ctx) //nolint:errcheck // the host may have closed it first
}

// guestRequest is the payload of request txid: the id, then filler.
func guestRequest(txid uint64) []byte {
	b := bytes.Repeat([]byte{byte(txid)}, 64)
	binary.LittleEndian.PutUint64(b, txid)
	return b
}

// send writes requests first..last, completions requested, in one batch.
func (g *fullGuest) send(t *testing.T, first, last uint64) {
	t.Helper()
	for id := first; id <= last; id++ {
		must(t, g.w.WriteInBand(id, ring.FlagCompletionRequested, guestRequest(id)))
	}
	g.w.Commit()
	must(t, g.ch.ToHost.Signal())
}

// read reads every completion in the incoming ring, checks it echoes its
// request, counts it, and signals the host if it waits for the space.
func (g *fullGuest) read(t *testing.T) int {
	t.Helper()
	n := 0
	var p ring.Packet
	for {
		err := g.r.Next(&p)
		if errors.Is(err, ring.ErrEmpty) {
			break
		}
		must(t, err)
		if p.Type != ring.TypeCompletion || !bytes.Equal(p.Payload(), guestRequest(p.TransactionID)) {
			t.Fatalf("packet of type %d, transaction %#x: not the echo of a request", p.Type, p.TransactionID)
		}
		g.got[p.TransactionID]++
		n++
	}
	if g.r.Commit() {
		must(t, g.ch.ToHost.Signal())
	}
	return n
}

// TestServicingFullRingCompletionsOnce: completions that wait in a
// server's send queue behind the guest's full incoming ring reach the
// guest exactly once across many servicings, although the guest frees
// ring space (and signals) between each save and the successor's
// restore: the paused, saved channel writes nothing more, and the
// successor writes the queue the save recorded.
func TestServicingFullRingCompletionsOnce(t *testing.T) {
	leakcheck.Check(t)
	const (
		requests = 600
		rounds   = 10
	)
	s := newSvc(t)
	server := func() *Channel {
		c := configure(t, s.Guest, newVSP(), echo)
		must(t, c.SetMaxPacketCount(requests))
		return c
	}
	s.server = server()
	must(t, s.server.Enable())
	must(t, s.server.Start())
	// A one-page incoming ring holds 46 completions: the rest queue.
	g := openFullGuest(t, s, 2)
	defer g.close()
	g.send(t, 1, requests)
	eventually(t, "every request read and answered", func() bool {
		st := s.server.Stats()
		return st.PacketsIn == requests && s.server.Outstanding() == 0
	})
	if q := s.server.Stats().Queued; q < requests/2 {
		t.Fatalf("%d completions queued, want most of %d", q, requests)
	}

	for round := range rounds {
		old := s.server
		must(t, old.Pause())
		saved := s.Save(t)
		parts := chunks(t, old, []int{4096})

		// The guest reads between the save and the handover, as a
		// running guest does: its signal (the server waits for space)
		// wakes the old channel, which must leave the ring alone.
		before := old.Stats()
		if n := g.read(t); n == 0 {
			t.Fatalf("round %d: the guest's ring held no completion", round)
		}
		eventually(t, "the old channel's wake-up", func() bool {
			st := old.Stats()
			return st.EmptyWakeups > before.EmptyWakeups || st.PacketsOut > before.PacketsOut
		})
		if after := old.Stats(); after.PacketsOut != before.PacketsOut {
			t.Errorf("round %d: the saved channel wrote %d packets after its save", round, after.PacketsOut-before.PacketsOut)
		}
		must(t, old.Servicing().Relinquish())

		s.successor(t, saved)
		n := server()
		must(t, n.RestoreChunks(parts))
		must(t, n.Enable())
		must(t, n.Start())
		s.Host.Resume()
		s.server = n
	}

	// The guest reads the rest: every completion, once.
	deadline := time.Now().Add(10 * time.Second)
	for len(g.got) < requests && time.Now().Before(deadline) {
		if g.read(t) == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			g.ch.FromHost.Wait(ctx) //nolint:errcheck // a timeout only means: look again
			cancel()
		}
	}
	g.read(t)
	dups, extra := 0, 0
	for id := uint64(1); id <= requests; id++ {
		switch c := g.got[id]; {
		case c == 0:
			t.Errorf("transaction %d: no completion", id)
		case c > 1:
			dups++
			extra += c - 1
		}
	}
	if dups > 0 || len(g.got) != requests {
		t.Fatalf("%d transactions completed more than once (%d completions too many); %d distinct of %d", dups, extra, len(g.got), requests)
	}
}
