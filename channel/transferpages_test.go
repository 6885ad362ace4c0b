package channel

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/ring"
)

const testSetID = 0xCAFE

// rxBuffer shares pages pages of the client's guest memory as a GPADL of
// c and registers it as set testSetID. It returns the GPADL id.
func rxBuffer(t *testing.T, r *rig, c *Channel, pages int) uint32 {
	t.Helper()
	return rxBufferOf(t, r.cl, c, pages)
}

// rxBufferOf is rxBuffer on guest client cl.
func rxBufferOf(t *testing.T, cl *guest.Client, c *Channel, pages int) uint32 {
	t.Helper()
	pfn, err := cl.Pages().Alloc(pages)
	must(t, err)
	pfns := make([]uint64, pages)
	for i := range pfns {
		pfns[i] = pfn + uint64(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testbus.Timeout)
	defer cancel()
	id, err := c.CreateGpadl(ctx, []gpa.Range{{ByteCount: uint32(pages) * 4096, PFNs: pfns}}, 0)
	must(t, err)
	must(t, c.AddTransferPageSet(testSetID, id))
	return id
}

// tpClient holds every transfer-page packet it is given, for the test to
// read and complete.
type tpClient struct {
	mu    sync.Mutex
	pkts  []*Packet
	flags []PacketFlags
}

func (h *tpClient) process(_ *Channel, p *Packet, _ []byte, flags PacketFlags) {
	h.mu.Lock()
	h.pkts = append(h.pkts, p)
	h.flags = append(h.flags, flags)
	h.mu.Unlock()
}

// completeHeld completes every packet not completed yet.
func (h *tpClient) completeHeld() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.pkts {
		if p != nil {
			p.Complete(nil)
		}
	}
	h.pkts = h.pkts[:0]
}

// complete completes packet i with payload.
func (h *tpClient) complete(i int, payload []byte) {
	h.mu.Lock()
	p := h.pkts[i]
	h.pkts[i] = nil
	h.mu.Unlock()
	p.Complete(payload)
}

func (h *tpClient) n() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pkts)
}

func (h *tpClient) get(i int) (*Packet, PacketFlags) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pkts[i], h.flags[i]
}

// readAll copies every range of p out of the receive buffer.
func readAll(t *testing.T, p *Packet) []byte {
	t.Helper()
	var out []byte
	for i, r := range p.TransferRanges() {
		b := make([]byte, r.Count)
		n, err := p.ReadTransferRange(i, b)
		must(t, err)
		out = append(out, b[:n]...)
	}
	return out
}

// tpPair is a server and client pair whose client has a receive buffer
// of pages pages that the server mapped as a transfer page set.
func tpPair(t *testing.T, pages int, h *tpClient) (s, c *Channel, set *TransferPageSet) {
	r := newRig(t)
	s, c = r.pair(t, ignore, h.process, StateCallbacks{}, StateCallbacks{})
	// Before the client's Cleanup, which waits for the packets it was
	// given: a test that failed half-way leaves some held.
	t.Cleanup(h.completeHeld)
	id := rxBuffer(t, r, c, pages)
	set, err := s.MapTransferPageSet(testSetID, id)
	must(t, err)
	if set.Size() != uint64(pages)*4096 {
		t.Fatalf("set size %d", set.Size())
	}
	return s, c, set
}

// TestTransferPagesRoundTrip: a server's transfer-page packets reach the
// client's ProcessPacket with the inline payload, the flags, the set id
// and the ranges' bytes; the client's completion returns the ranges.
func TestTransferPagesRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	var h tpClient
	s, _, set := tpPair(t, 4, &h)
	done := make(chan Status, 8)
	for i := range 3 {
		op, err := s.AllocatePacket()
		must(t, err)
		op.SetCompletion(func(p *OutPacket, st Status, _ []byte) { done <- st; p.Free() })
		data := [][]byte{bytes.Repeat([]byte{byte('a' + i)}, 1000), []byte("second range")}
		must(t, op.SendTransferPages([]byte("message!"), set, data, SendWaitForCompletion))
	}
	eventually(t, "three packets indicated", func() bool { return h.n() == 3 })
	for i := range 3 {
		p, flags := h.get(i)
		if flags != PacketFlagExternalData|PacketFlagTransferPages {
			t.Fatalf("flags %#x", flags)
		}
		if id, ok := p.TransferPageSet(); !ok || id != testSetID {
			t.Fatalf("set %#x %v", id, ok)
		}
		if string(p.Payload()) != "message!" {
			t.Fatalf("payload %q", p.Payload())
		}
		want := append(bytes.Repeat([]byte{byte('a' + i)}, 1000), "second range"...)
		if got := readAll(t, p); !bytes.Equal(got, want) {
			t.Fatalf("packet %d: data %q", i, got)
		}
	}
	if set.InUse() == 0 {
		t.Fatal("ranges free before any completion")
	}
	for i := range 3 {
		h.complete(i, nil)
		if st := <-done; st != StatusSuccess {
			t.Fatalf("completion status %v", st)
		}
	}
	if n := set.InUse(); n != 0 {
		t.Fatalf("%d bytes in use after every completion", n)
	}
}

// TestTransferPagesReuseOnlyAfterCompletion: a range is handed out again
// only once the guest completed the packet naming it, and every older
// one: until then the set refuses (StatusInsufficientResources) and the
// bytes the guest holds stay as they were sent.
func TestTransferPagesReuseOnlyAfterCompletion(t *testing.T) {
	leakcheck.Check(t)
	var h tpClient
	s, _, set := tpPair(t, 2, &h) // 8 KiB: four 2 KiB ranges
	ops := make([]*OutPacket, 5)
	for i := range ops {
		op, err := s.AllocatePacket()
		must(t, err)
		op.SetCompletion(func(*OutPacket, Status, []byte) {})
		ops[i] = op
	}
	chunk := func(i int) [][]byte { return [][]byte{bytes.Repeat([]byte{byte('A' + i)}, 2048)} }
	for i := range 4 {
		must(t, ops[i].SendTransferPages(nil, set, chunk(i), SendWaitForCompletion))
	}
	eventually(t, "four packets indicated", func() bool { return h.n() == 4 })
	offsets := make([]uint32, 4)
	for i := range 4 {
		p, _ := h.get(i)
		offsets[i] = p.TransferRanges()[0].Offset
	}
	if err := ops[4].SendTransferPages(nil, set, chunk(4), SendWaitForCompletion); !errors.Is(err, StatusInsufficientResources) {
		t.Fatalf("full set: %v", err)
	}
	// The second packet completes first: its range is still behind the
	// first one's, so nothing is reused yet.
	h.complete(1, nil)
	eventually(t, "the second completion read", func() bool { return set.InUse() == 8192 && s.Stats().CompletionsPending == 3 })
	if err := ops[4].SendTransferPages(nil, set, chunk(4), SendWaitForCompletion); !errors.Is(err, StatusInsufficientResources) {
		t.Fatalf("reused a range behind an outstanding one: %v", err)
	}
	p0, _ := h.get(0)
	if got := readAll(t, p0); !bytes.Equal(got, chunk(0)[0]) {
		t.Fatal("the guest's range changed before its completion")
	}
	h.complete(0, nil)
	eventually(t, "the first two ranges given back", func() bool { return set.InUse() == 4096 })
	must(t, ops[4].SendTransferPages(nil, set, chunk(4), SendWaitForCompletion))
	eventually(t, "fifth packet", func() bool { return h.n() == 5 })
	p4, _ := h.get(4)
	if off := p4.TransferRanges()[0].Offset; off != offsets[0] {
		t.Fatalf("fifth range at %d, want the first's %d", off, offsets[0])
	}
	for _, i := range []int{2, 3} {
		p, _ := h.get(i)
		if got := readAll(t, p); !bytes.Equal(got, chunk(i)[0]) {
			t.Fatalf("packet %d's range was overwritten", i)
		}
		h.complete(i, nil)
	}
	h.complete(4, nil)
	eventually(t, "all given back", func() bool { return set.InUse() == 0 })
}

// TestTransferPagesSendArguments: what SendTransferPages refuses.
func TestTransferPagesSendArguments(t *testing.T) {
	leakcheck.Check(t)
	var h tpClient
	s, c, set := tpPair(t, 1, &h)
	op, err := s.AllocatePacket()
	must(t, err)
	defer op.Free()
	for name, err := range map[string]error{
		"no wait":    op.SendTransferPages(nil, set, [][]byte{{1}}, 0),
		"no ranges":  op.SendTransferPages(nil, set, nil, SendWaitForCompletion),
		"empty":      op.SendTransferPages(nil, set, [][]byte{{}}, SendWaitForCompletion),
		"nil set":    op.SendTransferPages(nil, nil, [][]byte{{1}}, SendWaitForCompletion),
		"too large":  op.SendTransferPages(nil, set, [][]byte{make([]byte, 4097)}, SendWaitForCompletion),
		"client set": op.SendTransferPages(nil, &TransferPageSet{c: s}, [][]byte{{1}}, SendWaitForCompletion),
	} {
		if err == nil {
			t.Errorf("%s: sent", name)
		}
	}
	if _, err := c.MapTransferPageSet(1, 1); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("client MapTransferPageSet: %v", err)
	}
	if err := s.AddTransferPageSet(1, 1); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("server AddTransferPageSet: %v", err)
	}
	if set.InUse() != 0 {
		t.Fatal("a refused send holds buffer space")
	}
}

// rawHost is a hostile host: a device that writes packets of its own
// making into the guest's incoming ring.
type rawHost struct {
	opened chan *host.Channel
	closed chan struct{}
}

func (d *rawHost) Offer() host.OfferSpec {
	return host.OfferSpec{InterfaceType: testType, InterfaceInstance: testInst}
}
func (d *rawHost) Open(ch *host.Channel) error { d.opened <- ch; return nil }
func (d *rawHost) Close(*host.Channel)         { close(d.closed) }

// TestTransferPagesHostileHost: a host's transfer-page packets naming
// another set, a range past the buffer, ranges that overlap, a range whose
// end overflows 32 bits, and more ranges than SetMaxExternalData allows,
// are each dropped without a completion and counted; the queue goes on
// and the good packets around them are indicated and completed.
func TestTransferPagesHostileHost(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	dev := &rawHost{opened: make(chan *host.Channel, 1), closed: make(chan struct{})}
	off, err := r.guest.Offer(dev)
	must(t, err)
	defer off.Rescind(context.Background()) //nolint:errcheck // best effort
	var h tpClient
	c := r.newClient(t, h.process, StateCallbacks{})
	t.Cleanup(h.completeHeld)
	must(t, c.SetMaxExternalData(1<<20, 4))
	must(t, c.Enable())
	waitState(t, c, StateActive)
	hc := <-dev.opened
	rxBuffer(t, r, c, 2) // 8 KiB

	w, err := ring.NewWriter(hc.Out)
	must(t, err)
	write := func(txid uint64, set uint16, ranges ...ring.TransferRange) {
		t.Helper()
		p := ring.OutPacket{Type: ring.TypeTransferPages, Flags: ring.FlagCompletionRequested, TransactionID: txid, TransferPageSet: set, TransferRanges: ranges}
		must(t, w.Write(&p, []byte("inline..")))
	}
	tr := func(count, offset uint32) ring.TransferRange { return ring.TransferRange{Count: count, Offset: offset} }
	write(1, testSetID, tr(100, 0))
	write(2, testSetID+1, tr(100, 0))                                        // another set
	write(3, testSetID, tr(100, 8192-99))                                    // past the end by one
	write(4, testSetID, tr(100, 200), tr(100, 0), tr(50, 150))               // out of order, touching, no overlap
	write(5, testSetID, tr(0x20, 0xFFFFFFF0))                                // end overflows 32 bits
	write(6, testSetID, tr(1, 0), tr(1, 8), tr(1, 16), tr(1, 24), tr(1, 32)) // five ranges, limit 4
	write(7, testSetID, tr(100, 0), tr(100, 99))                             // overlap by one byte
	write(8, testSetID, tr(0, 0))                                            // empty range
	write(9, testSetID, tr(8192, 0))                                         // the whole buffer
	w.Commit()
	must(t, hc.ToGuest.Signal())

	eventually(t, "the three good packets indicated", func() bool { return h.n() == 3 })
	var txids []uint64
	for i := range 3 {
		p, _ := h.get(i)
		txids = append(txids, p.TransactionID())
		h.complete(i, []byte("ok"))
	}
	if txids[0] != 1 || txids[1] != 4 || txids[2] != 9 {
		t.Fatalf("indicated %v, want [1 4 9]", txids)
	}
	st := c.Stats()
	if st.TransferPagesDropped != 6 || st.IncomingStopped != "" || st.TransferPagesDropReason == "" {
		t.Fatalf("stats: dropped %d (%q), stopped %q", st.TransferPagesDropped, st.TransferPagesDropReason, st.IncomingStopped)
	}
	// The guest completed exactly the good packets, by their ids.
	rd, err := ring.NewReader(hc.In)
	must(t, err)
	var got []uint64
	deadline := time.Now().Add(testbus.Timeout)
	for len(got) < 3 && time.Now().Before(deadline) {
		var p ring.Packet
		if err := rd.Next(&p); errors.Is(err, ring.ErrEmpty) {
			rd.Commit()
			time.Sleep(time.Millisecond)
			continue
		} else {
			must(t, err)
		}
		if p.Type != ring.TypeCompletion || string(p.Payload()[:2]) != "ok" {
			t.Fatalf("guest wrote type %v %q", p.Type, p.Payload())
		}
		got = append(got, p.TransactionID)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 4 || got[2] != 9 {
		t.Fatalf("completions %v, want [1 4 9]", got)
	}
	// The queue goes on: an in-band packet after them is indicated.
	must(t, w.WriteInBand(10, 0, []byte("in-band.")))
	w.Commit()
	must(t, hc.ToGuest.Signal())
	eventually(t, "in-band packet after the bad ones", func() bool { return h.n() == 4 })
	h.complete(3, nil)
	must(t, c.Disable())
}
