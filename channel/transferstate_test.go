package channel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/savedstate"
)

// tpFixture is a server with a transfer page set of 8 KiB and three
// 2 KiB transfer-page packets the guest holds, serviced: the restored
// server runs and the client still holds the packets.
type tpFixture struct {
	s     *svc
	h     *tpClient
	v     *vsp
	state []byte
}

func tpChunk(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 2048) }

func newTPFixture(t *testing.T) *tpFixture {
	t.Helper()
	f := &tpFixture{s: newSvc(t), h: &tpClient{}, v: newVSP()}
	s := f.s
	s.server = configure(t, s.Guest, newVSP(), echo)
	must(t, s.server.Enable())
	must(t, s.server.Start())
	cl := NewClient()
	must(t, cl.SetClient(s.Client))
	must(t, cl.SetInterface(testType, testInst))
	must(t, cl.SetProcessPacketCallbacks(f.h.process, nil))
	t.Cleanup(func() { cl.Cleanup() })
	// Before the client's Cleanup, which waits for every packet it was
	// given: those the test left held are completed now.
	t.Cleanup(func() { f.h.completeHeld() })
	must(t, cl.Enable())
	waitState(t, s.server, StateActive)
	waitState(t, cl, StateActive)
	id := rxBufferOf(t, s.Client, cl, 2)
	set, err := s.server.MapTransferPageSet(testSetID, id)
	must(t, err)
	for i := range 3 {
		op, err := s.server.AllocatePacket()
		must(t, err)
		op.Context = uint64(i)
		op.SetCompletion(func(*OutPacket, Status, []byte) {})
		must(t, op.SendTransferPages([]byte("rx"), set, [][]byte{tpChunk(i)}, SendWaitForCompletion))
	}
	eventually(t, "three packets held", func() bool { return f.h.n() == 3 })
	f.state = s.service(t, f.v, echo)
	return f
}

// TestTransferPagesServicing: ranges the guest holds at a pause are in
// the saved state (one channel-transfer-pages record before the packets);
// the restored server maps the buffer again, reuses none of them until
// the guest completes their packets (whose completions reach the restored
// packets), and then hands them out again.
func TestTransferPagesServicing(t *testing.T) {
	leakcheck.Check(t)
	f := newTPFixture(t)
	defer f.h.completeHeld() // see TestTransferStateRefusals
	var kinds []savedstate.Kind
	for _, r := range records(t, f.state) {
		kinds = append(kinds, r.Kind)
	}
	if len(kinds) < 4 || kinds[2] != KindChannelTransferPages {
		t.Fatalf("records %v, want the transfer-page record third", kinds)
	}
	n := f.s.server
	set := n.TransferPageSet(testSetID)
	if set == nil {
		t.Fatal("no restored set")
	}
	if n := set.InUse(); n != 3*2048 {
		t.Fatalf("restored set holds %d bytes, want %d", n, 3*2048)
	}
	op, err := n.AllocatePacket()
	must(t, err)
	op.Context = uint64(99)
	op.SetCompletion(f.v.done)
	if err := op.SendTransferPages(nil, set, [][]byte{make([]byte, 4096)}, SendWaitForCompletion); !errors.Is(err, StatusInsufficientResources) {
		t.Fatalf("a held range reused after the restore: %v", err)
	}
	for i := range 3 {
		p, _ := f.h.get(i)
		if got := readAll(t, p); !bytes.Equal(got, tpChunk(i)) {
			t.Fatalf("packet %d's range changed across the servicing", i)
		}
		f.h.complete(i, nil)
	}
	eventually(t, "the held ranges given back to the restored set", func() bool { return set.InUse() == 0 })
	f.v.mu.Lock()
	for i := range uint64(3) {
		if f.v.results[i] != StatusSuccess {
			t.Errorf("restored packet %d: %v", i, f.v.results[i])
		}
	}
	f.v.mu.Unlock()
	must(t, op.SendTransferPages(nil, set, [][]byte{bytes.Repeat([]byte{'z'}, 4096)}, SendWaitForCompletion))
	eventually(t, "a packet after the restore", func() bool { return f.h.n() == 4 })
	p, _ := f.h.get(3)
	if got := readAll(t, p); !bytes.Equal(got, bytes.Repeat([]byte{'z'}, 4096)) {
		t.Fatal("data after the restore")
	}
	f.h.complete(3, nil)
	eventually(t, "the last packet completed", func() bool { return set.InUse() == 0 })
}

// TestTransferStateRefusals: a transfer-page record that breaks its
// rules is refused and leaves the channel as it was.
func TestTransferStateRefusals(t *testing.T) {
	good := &transferRecord{ID: 1, Gpadl: 5, Size: 8192, Head: 4096, Tail: 0, First: 7,
		Entries: []transferEntry{{start: 0, end: 2048}, {start: 2048, end: 4096, done: true}},
		Packets: []transferPacket{{Slot: 3, Seq: 7, Ranges: []TransferRange{{Count: 2048, Offset: 0}}}}}
	if _, err := decodeTransfer(good.encode()); err != nil {
		t.Fatalf("good record: %v", err)
	}
	bad := map[string]func(r *transferRecord){
		"zero size":      func(r *transferRecord) { r.Size = 0 },
		"head past tail": func(r *transferRecord) { r.Head = r.Tail + r.Size + 8 },
		"gap":            func(r *transferRecord) { r.Entries[1].start = 2056 },
		"oldest done":    func(r *transferRecord) { r.Entries[0].done = true },
		"unheld":         func(r *transferRecord) { r.Packets = nil },
		"held twice": func(r *transferRecord) {
			r.Packets = append(r.Packets, transferPacket{Slot: 4, Seq: 7, Ranges: r.Packets[0].Ranges})
		},
		"done entry held":    func(r *transferRecord) { r.Packets[0].Seq = 8 },
		"range outside":      func(r *transferRecord) { r.Packets[0].Ranges[0].Offset = 8000 },
		"range overflows":    func(r *transferRecord) { r.Packets[0].Ranges[0] = TransferRange{Count: 0x20, Offset: 0xFFFFFFF0} },
		"empty range":        func(r *transferRecord) { r.Packets[0].Ranges[0].Count = 0 },
		"no ranges":          func(r *transferRecord) { r.Packets[0].Ranges = nil },
		"end not head":       func(r *transferRecord) { r.Head = 6144 },
		"bytes without ents": func(r *transferRecord) { r.Entries, r.Packets = nil, nil },
	}
	for name, mutate := range bad {
		r := *good
		r.Entries = append([]transferEntry(nil), good.Entries...)
		r.Packets = []transferPacket{{Slot: 3, Seq: 7, Ranges: []TransferRange{{Count: 2048, Offset: 0}}}}
		mutate(&r)
		if _, err := decodeTransfer(r.encode()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A whole state: the record must name a mapped GPADL and a packet
	// waiting for its completion.
	f := newTPFixture(t)
	// Before the restored server's Cleanup, whose rescind waits for the
	// client to close, which waits for the packets it holds.
	defer f.h.completeHeld()
	b, recs, err := savedstate.Parse(f.state, savedstate.Limits{})
	must(t, err)
	n := configure(t, f.s.Guest, newVSP(), echo)
	if _, err := n.parseState(b, recs, false); err != nil {
		t.Fatalf("the saved state does not check: %v", err)
	}
	for name, mutate := range map[string]func(x *transferRecord){
		"unmapped GPADL": func(x *transferRecord) { x.Gpadl++ },
		"unknown slot":   func(x *transferRecord) { x.Packets[0].Slot = 999 },
	} {
		x, err := decodeTransfer(recs[2].Body)
		must(t, err)
		mutate(x)
		cp := append([]savedstate.Record(nil), recs...)
		cp[2].Body = x.encode()
		if _, err := n.parseState(b, cp, false); !errors.Is(err, savedstate.ErrInvalid) && err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestGoldenTransferPagesState keeps a format-1 channel state holding a
// transfer-page record (0x0007): a later release must still decode and
// check it (go test -update rewrites it).
func TestGoldenTransferPagesState(t *testing.T) {
	path := filepath.Join("testdata", "golden", "channel-transfer-pages-v1.state")
	if *update {
		f := newTPFixture(t)
		f.h.completeHeld()
		must(t, os.WriteFile(path, f.state, 0o644))
	}
	pc, recs := checkGolden(t, path)
	if len(pc.xsets) != 1 || len(pc.xsets[0].Packets) != 3 || pc.xsets[0].ID != testSetID {
		t.Fatalf("transfer page sets %+v", pc.xsets)
	}
	for _, r := range recs {
		info, ok := savedstate.LookupKind(r.Kind)
		if !ok {
			t.Fatalf("kind %#x not registered", uint16(r.Kind))
		}
		if _, err := info.Describe(r.Body); err != nil {
			t.Fatalf("%s: %v", info.Name, err)
		}
	}
}
