package channel

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/savedstate"
)

// The queued GPA-direct packet of the tests below: a payload and two
// ranges of guest pages, the first crossing a page boundary.
var (
	extPayload = []byte("gpa-direct read!")
	extRanges  = []gpa.Range{
		{ByteCount: 5000, ByteOffset: 100, PFNs: []uint64{10, 11}},
		{ByteCount: 4096, PFNs: []uint64{20}},
	}
)

// extSeq is the VSP's sequence number (vsp) of the GPA-direct packet.
const extSeq = 1000

// extSeen is what the client was given of GPA-direct packets.
type extSeen struct {
	mu      sync.Mutex
	n       int
	payload []byte
	ranges  []gpa.Range
}

// newExternalFixture is a fixture whose saved send queue ends with a
// packet sent by SendExternal: 80 packets fill the client's pool and the
// ring and queue the last few, so the GPA-direct one queues behind them.
func newExternalFixture(t *testing.T) (*fixture, *extSeen) {
	t.Helper()
	seen := &extSeen{}
	f := newFixtureWith(t, 80, fixtureOpts{
		queue: func(s *Channel, v *vsp) {
			p, err := s.AllocatePacket()
			must(t, err)
			p.Context = uint64(extSeq)
			p.SetCompletion(v.done)
			must(t, p.SendExternal(extPayload, extRanges, SendWaitForCompletion))
		},
		client: func(p *Packet, payload []byte, flags PacketFlags) {
			if flags&PacketFlagExternalData == 0 {
				return
			}
			seen.mu.Lock()
			seen.n++
			seen.payload = bytes.Clone(payload)
			seen.ranges, _ = copyRanges(nil, nil, p.ranges)
			seen.mu.Unlock()
		},
	})
	return f, seen
}

// TestSaveRestoreExternalPacket: a paused channel whose send queue holds a
// packet with external data (SendExternal) restores, the restored packet
// carries the same payload and ranges, and once the channel runs it is
// sent as the original would have been and completes.
func TestSaveRestoreExternalPacket(t *testing.T) {
	leakcheck.Check(t)
	f, seen := newExternalFixture(t)
	defer f.release()
	v := newVSP()
	n := configure(t, f.g, v, echo)
	must(t, n.Restore(f.state))
	n.mu.Lock()
	st := n.restored
	n.mu.Unlock()
	var ext *OutPacket
	for _, it := range st.order {
		if it.p != nil && len(it.p.ranges) > 0 {
			ext = it.p
		}
	}
	switch {
	case ext == nil:
		t.Fatal("no queued packet with external data restored")
	case ext.Context != uint64(extSeq) || !bytes.Equal(ext.buf[:ext.n], extPayload) || !reflect.DeepEqual(ext.ranges, extRanges):
		t.Fatalf("restored packet %v, payload %q, ranges %+v; want %d, %q, %+v", ext.Context, ext.buf[:ext.n], ext.ranges, extSeq, extPayload, extRanges)
	}
	must(t, n.Enable())
	must(t, n.Start())
	f.release()
	eventually(t, "the GPA-direct packet's completion", func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		_, ok := v.results[extSeq]
		return ok
	})
	v.mu.Lock()
	res := v.results[extSeq]
	v.mu.Unlock()
	if res != StatusSuccess {
		t.Fatalf("GPA-direct packet completed with %v", res)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if seen.n != 1 || !bytes.Equal(seen.payload, extPayload) || !reflect.DeepEqual(seen.ranges, extRanges) {
		t.Fatalf("client got %d GPA-direct packets, the last %q with %+v; want one, %q with %+v", seen.n, seen.payload, seen.ranges, extPayload, extRanges)
	}
}

// TestPacketLibRanges: a packet's library bytes with ranges decode to the
// same ranges (decodeLib, and OutPacket.Restore, which shares it), and a
// bad range anywhere in the list is refused.
func TestPacketLibRanges(t *testing.T) {
	good := libPacket{Slot: 5, State: savedQueued, TxID: 7<<32 | 5, Wait: true, Payload: []byte("payload!"), Ranges: extRanges}
	l, err := decodeLib(good.appendTo(nil))
	must(t, err)
	if !reflect.DeepEqual(*l, good) {
		t.Fatalf("decoded %+v, want %+v", *l, good)
	}
	bad := func(i int, r gpa.Range) []byte {
		b := good
		b.Ranges = append([]gpa.Range(nil), extRanges...)
		b.Ranges[i] = r
		return b.appendTo(nil)
	}
	cases := map[string][]byte{
		"first range empty":      bad(0, gpa.Range{PFNs: []uint64{1}}),
		"first range short":      bad(0, gpa.Range{ByteCount: 5000, PFNs: []uint64{1}}),
		"first offset past page": bad(0, gpa.Range{ByteCount: 8, ByteOffset: gpa.PageSize, PFNs: []uint64{1}}),
		"last range long":        bad(1, gpa.Range{ByteCount: 8, PFNs: []uint64{1, 2}}),
		"truncated":              good.appendTo(nil)[:60],
		"trailing byte":          append(good.appendTo(nil), 0),
	}
	r := newRig(t)
	s := r.newServer(t, echo, StateCallbacks{})
	for name, b := range cases {
		if l, err := decodeLib(b); err == nil || l != nil || !errors.Is(err, savedstate.ErrInvalid) {
			t.Errorf("%s: decoded %+v, %v", name, l, err)
		}
		p, err := s.AllocatePacket()
		must(t, err)
		if err := p.Restore(b); !errors.Is(err, StatusInvalidParameter) {
			t.Errorf("%s: Restore: %v", name, err)
		}
		p.Free()
	}
	// Good bytes pass the decoder: Restore refuses them only for being
	// called outside a restore.
	p, err := s.AllocatePacket()
	must(t, err)
	if err := p.Restore(good.appendTo(nil)); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("Restore of good bytes outside a restore: %v", err)
	}
	p.Free()
}

// FuzzPacketLib feeds arbitrary library bytes to decodeLib: it never
// panics, refuses with ErrInvalid and no result, and what it accepts has
// only valid ranges and encodes back to the same bytes.
func FuzzPacketLib(f *testing.F) {
	good := libPacket{Slot: 5, State: savedQueued, TxID: 7<<32 | 5, Wait: true, Payload: []byte("payload!"), Ranges: extRanges}
	f.Add(good.appendTo(nil))
	good.Ranges = nil
	f.Add(good.appendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLib(b)
		if err != nil {
			if l != nil || !errors.Is(err, savedstate.ErrInvalid) {
				t.Fatalf("refused with %v and a result %+v", err, l)
			}
			return
		}
		for i, r := range l.Ranges {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted range %d: %v", i, err)
			}
		}
		if !bytes.Equal(l.appendTo(nil), b) {
			t.Fatal("accepted bytes encode back differently")
		}
	})
}

// TestGoldenExternalState keeps a format-1 channel state whose send queue
// holds a packet with external data, from a real save (go test -update
// rewrites it, and the fuzz seeds cut from it): a later release must
// still decode and check it.
func TestGoldenExternalState(t *testing.T) {
	path := filepath.Join("testdata", "golden", "channel-external-v1.state")
	if *update {
		f, _ := newExternalFixture(t)
		defer f.release()
		must(t, os.WriteFile(path, f.state, 0o644))
		writeExternalSeeds(t, f.state)
	}
	pc, recs := checkGolden(t, path)
	var ext []*libPacket
	for _, p := range pc.packets {
		if len(p.Lib.Ranges) > 0 {
			ext = append(ext, p.Lib)
		}
	}
	if len(ext) != 1 || ext[0].State != savedQueued || !bytes.Equal(ext[0].Payload, extPayload) || !reflect.DeepEqual(ext[0].Ranges, extRanges) {
		t.Fatalf("packets with ranges %+v, want one queued with %+v", ext, extRanges)
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

// writeExternalSeeds writes the fuzz seeds the external state gives: the
// state whole and cut inside its GPA-direct packet record for
// FuzzRestoreFromBuffer and the container's FuzzRestore, and that
// packet's library bytes for FuzzPacketLib.
func writeExternalSeeds(t *testing.T, state []byte) {
	t.Helper()
	_, recs, err := savedstate.Parse(state, savedstate.Limits{})
	must(t, err)
	var lib []byte
	for _, r := range recs {
		if p, err := decodePacket(r.Body); r.Kind == KindChannelPacket && err == nil && len(p.Lib.Ranges) > 0 {
			lib = p.lib
		}
	}
	if lib == nil {
		t.Fatal("no packet record with ranges in the state")
	}
	cut := bytes.Index(state, lib) + len(lib)/2
	seed := func(dir, name string, args ...any) {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch a := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", a)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", a)
			}
		}
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644))
	}
	fuzz := filepath.Join("testdata", "fuzz")
	seed(filepath.Join(fuzz, "FuzzRestoreFromBuffer"), "external-whole", state, uint16(0))
	seed(filepath.Join(fuzz, "FuzzRestoreFromBuffer"), "external-split", state, uint16(cut))
	seed(filepath.Join(fuzz, "FuzzPacketLib"), "external", lib)
	// The first range's byte count zeroed: a bad range that is not the
	// last one.
	badRange := bytes.Clone(lib)
	first := 4 + 1 + 8 + 1 + 4 + len(extPayload) + 4
	clear(badRange[first : first+4])
	seed(filepath.Join(fuzz, "FuzzPacketLib"), "external-bad-range", badRange)
	// The container's own target, in the package below: a state of a
	// real layer, which its seeds otherwise lack.
	seed(filepath.Join("..", "savedstate", "testdata", "fuzz", "FuzzRestore"), "channel-external", state, uint16(cut))
}
