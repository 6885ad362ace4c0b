package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixture is a serviced host whose restored guest waits for a server
// channel holding n transactions (in flight and queued) to re-attach.
type fixture struct {
	s       *svc
	g       *host.Guest
	state   []byte
	release func() // completes what the client holds: defer it in the test
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	return newFixtureWith(t, n, fixtureOpts{})
}

// fixtureOpts add to a fixture's traffic.
type fixtureOpts struct {
	// queue sends more from the server, after its n packets (so behind
	// the ones queued) and before the pause.
	queue func(s *Channel, v *vsp)
	// client sees every packet the client is given, before it is held
	// or completed, in ProcessPacket.
	client func(p *Packet, payload []byte, flags PacketFlags)
}

func newFixtureWith(t testing.TB, n int, opts fixtureOpts) *fixture {
	t.Helper()
	s := newSvcTB(t)
	old := newVSP()
	s.server = configure(t, s.Guest, old, echo)
	must(t, s.server.Enable())
	must(t, s.server.Start())
	var mu sync.Mutex
	var held []*Packet
	var released bool
	cl := NewClient()
	must(t, cl.SetClient(s.Client))
	must(t, cl.SetInterface(testType, testInst))
	must(t, cl.SetRingPages(3, 3))
	must(t, cl.SetProcessPacketCallbacks(func(_ *Channel, p *Packet, payload []byte, flags PacketFlags) {
		if opts.client != nil {
			opts.client(p, payload, flags)
		}
		mu.Lock()
		if released {
			mu.Unlock()
			p.Complete(nil)
			return
		}
		held = append(held, p)
		mu.Unlock()
	}, nil))
	t.Cleanup(func() { cl.Cleanup() })
	release := func() {
		mu.Lock()
		hp := held
		held, released = nil, true
		mu.Unlock()
		for _, p := range hp {
			p.Complete(nil)
		}
	}
	t.Cleanup(release)
	must(t, cl.Enable())
	waitState(t, s.server, StateActive)
	for seq := uint64(0); seq < uint64(n); seq++ {
		p, err := s.server.AllocatePacket()
		must(t, err)
		p.Context = seq
		p.SetCompletion(old.done)
		must(t, p.Send(bytes.Repeat([]byte{byte(seq)}, 600), SendWaitForCompletion))
	}
	if opts.queue != nil {
		opts.queue(s.server, old)
	}
	eventually(t, "client holds packets", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) >= min(n, DefaultMaxPacketCount) })
	must(t, s.server.Pause())
	saved := s.Save(t)
	var buf bytes.Buffer
	must(t, s.server.Save(&buf))
	s.successor(t, saved)
	s.Host.Resume()
	return &fixture{s: s, g: s.Guest, state: buf.Bytes(), release: release}
}

func records(t testing.TB, state []byte) []savedstate.Record {
	t.Helper()
	_, recs, err := savedstate.Parse(state, savedstate.Limits{})
	must(t, err)
	return recs
}

func sameRecords(t testing.TB, a, b []byte) {
	t.Helper()
	ra, rb := records(t, a), records(t, b)
	if len(ra) != len(rb) {
		t.Fatalf("%d records, then %d", len(ra), len(rb))
	}
	for i := range ra {
		if ra[i].Kind != rb[i].Kind || ra[i].Flags != rb[i].Flags || !bytes.Equal(ra[i].Body, rb[i].Body) {
			t.Fatalf("record %d (%s) differs", i+1, savedstate.KindName(ra[i].Kind))
		}
	}
}

func TestSaveMisuse(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, c := r.pair(t, echo, echo, StateCallbacks{}, StateCallbacks{})
	if _, _, err := s.SaveContinue(make([]byte, 100)); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("SaveContinue without SaveBegin: %v", err)
	}
	if err := s.SaveBegin(); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("SaveBegin of an active channel: %v", err)
	}
	if err := c.SaveBegin(); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("SaveBegin of a client: %v", err)
	}
	if err := s.RestoreFromBuffer(make([]byte, 64)); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("restore into an enabled channel: %v", err)
	}
	must(t, s.Pause())
	must(t, s.SaveBegin())
	if err := s.SaveBegin(); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("second SaveBegin: %v", err)
	}
	if n, req, err := s.SaveContinue(nil); !errors.Is(err, StatusBufferTooSmall) || n != 0 || req == 0 {
		t.Fatalf("empty buffer: %d %d %v", n, req, err)
	}
	s.SaveEnd() // unfinished
	if _, _, err := s.SaveContinue(make([]byte, 1<<16)); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("SaveContinue after SaveEnd: %v", err)
	}
	var buf bytes.Buffer
	must(t, s.Save(&buf))
	must(t, s.Start())
}

// TestSaveRestoreSave: a restored channel saves the same records.
func TestSaveRestoreSave(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 80)
	defer f.release()
	n := configure(t, f.g, newVSP(), echo)
	must(t, n.Restore(f.state))
	must(t, n.Enable())
	if st := n.State(); st != StateStopped {
		t.Fatalf("restored channel is %v, want Stopped", st)
	}
	var buf bytes.Buffer
	must(t, n.Save(&buf))
	sameRecords(t, f.state, buf.Bytes())
}

// TestSaveContinueAnySizes: whatever buffer sizes the caller uses, the
// chunks follow the three-outcome contract and make the same records.
func TestSaveContinueAnySizes(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 80)
	defer f.release()
	n := configure(t, f.g, newVSP(), echo)
	must(t, n.Restore(f.state))
	must(t, n.Enable())
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 200; iter++ {
		must(t, n.SaveBegin())
		var got []byte
		for calls := 0; ; calls++ {
			if calls > 100000 {
				t.Fatal("no progress")
			}
			buf := bytes.Repeat([]byte{0xEE}, rng.IntN(2000))
			filled, req, err := n.SaveContinue(buf)
			switch {
			case err == nil:
				if req != 0 {
					t.Fatalf("success with required %d", req)
				}
			case errors.Is(err, StatusBufferTooSmall):
				if filled != 0 || req <= len(buf) || !bytes.Equal(buf, bytes.Repeat([]byte{0xEE}, len(buf))) {
					t.Fatalf("too small: filled %d required %d buffer %d, or buffer touched", filled, req, len(buf))
				}
			case errors.Is(err, StatusBufferOverflow):
				if filled == 0 || req <= len(buf)-filled {
					t.Fatalf("overflow: filled %d required %d buffer %d", filled, req, len(buf))
				}
			default:
				t.Fatal(err)
			}
			got = append(got, buf[:filled]...)
			if err == nil {
				break
			}
		}
		n.SaveEnd()
		sameRecords(t, f.state, got)
	}
}

// observable is what a failed restore must leave as it was.
type observable struct {
	state    State
	restored bool
	live     int
	slots    int
	free     int
}

func observe(c *Channel) observable {
	c.mu.Lock()
	o := observable{state: c.ph.public(), restored: c.restored != nil}
	c.mu.Unlock()
	c.sendMu.Lock()
	o.live, o.slots, o.free = c.outLive, len(c.outSlots), len(c.outFree)
	c.sendMu.Unlock()
	return o
}

// recordSpans cuts a state into its records.
func recordSpans(t testing.TB, state []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for off := 0; off < len(state); {
		n := savedstate.HeaderSize + (int(uint32(state[off+8])|uint32(state[off+9])<<8|uint32(state[off+10])<<16|uint32(state[off+11])<<24)+7)&^7
		out = append(out, state[off:off+n])
		off += n
	}
	return out
}

func TestRestoreRejectsUnchanged(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 80)
	defer f.release()
	recs := recordSpans(t, f.state)
	other := newFixture(t, 70)
	defer other.release()
	otherRecs := recordSpans(t, other.state)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(i int) []byte { b := bytes.Clone(f.state); b[i] ^= 0x10; return b }
	resave := func(mut func([]savedstate.Record) []savedstate.Record) []byte {
		b, rs, err := savedstate.Parse(f.state, savedstate.Limits{})
		must(t, err)
		sv, err := savedstate.NewSaver(b.Scope, b.Identity, mut(rs))
		must(t, err)
		return sv.Bytes()
	}
	cases := map[string][][]byte{
		"corrupt header":     {flip(40)},
		"corrupt body":       {flip(len(recs[0]) + 40)},
		"truncated":          {f.state[:len(f.state)-5]},
		"ends early":         {cat(recs[:len(recs)-1]...), nil},
		"reordered":          {cat(append([][]byte{recs[0], recs[2], recs[1]}, recs[3:]...)...)},
		"foreign chunk":      {cat(recs[:3]...), cat(otherRecs[3:]...)},
		"garbage":            {[]byte("this is not a saved state, but long enough to look at it")},
		"packet count":       {resave(func(r []savedstate.Record) []savedstate.Record { return append(r[:2:2], r[3:]...) })},
		"duplicate slot":     {resave(func(r []savedstate.Record) []savedstate.Record { return append(r[:3:3], r[2:]...) })},
		"mapping of nothing": {resave(func(r []savedstate.Record) []savedstate.Record { r[1].Body = encodeMappings([]uint32{0x77}); return r })},
		"unknown critical": {resave(func(r []savedstate.Record) []savedstate.Record {
			return append(r, savedstate.Record{Kind: 0x00FF, Flags: savedstate.FlagCritical})
		})},
		"wrong channel id": {resave(func(r []savedstate.Record) []savedstate.Record {
			r[0].Body = bytes.Clone(r[0].Body)
			r[0].Body[0]++
			return r
		})},
		"bus state": {resave(func(r []savedstate.Record) []savedstate.Record { return nil })},
	}
	for name, chunks := range cases {
		n := configure(t, f.g, newVSP(), echo)
		before := observe(n)
		var err error
		for _, ch := range chunks {
			if ch == nil {
				break
			}
			if err = n.RestoreFromBuffer(ch); err != nil && !errors.Is(err, StatusMoreProcessingRequired) {
				break
			}
		}
		if name == "ends early" {
			if !errors.Is(err, StatusMoreProcessingRequired) {
				t.Errorf("%s: %v", name, err)
			}
			err = n.Restore(nil) // the next call starts anew: an empty chunk fails
		}
		if err == nil || errors.Is(err, StatusMoreProcessingRequired) {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !errors.Is(err, StatusInvalidParameter) {
			t.Errorf("%s: %v is not STATUS_INVALID_PARAMETER", name, err)
		}
		if after := observe(n); after != before {
			t.Errorf("%s: channel changed: %+v, was %+v", name, after, before)
		}
		// The good state still restores afterwards.
		if err := n.Restore(f.state); err != nil {
			t.Errorf("%s: good state after a failed one: %v", name, err)
		}
	}
	// Another identity: a channel of another instance refuses it.
	n := NewServer()
	must(t, n.SetGuest(f.g))
	must(t, n.SetInterface(testType, protocol.GUID{1}))
	must(t, n.SetProcessPacketCallbacks(echo, nil))
	if err := n.Restore(f.state); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("other identity: %v", err)
	}
}

// TestGoldenChannelState keeps a format-1 channel state: a later release
// must still decode and check it (go test -update rewrites it).
func TestGoldenChannelState(t *testing.T) {
	path := filepath.Join("testdata", "golden", "channel-v1.state")
	if *update {
		f := newFixture(t, 70)
		defer f.release()
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, f.state, 0o644))
	}
	pc, recs := checkGolden(t, path)
	if len(pc.packets) != 70 {
		t.Fatalf("%d packets", len(pc.packets))
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

// checkGolden reads the golden state at path and checks it as a channel
// configured alike would, without a host.
func checkGolden(t *testing.T, path string) (*parsedChannel, []savedstate.Record) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	n := configure(t, nil, newVSP(), echo)
	b, recs, err := savedstate.Parse(want, savedstate.Limits{})
	must(t, err)
	pc, err := n.parseState(b, recs, false)
	if err != nil {
		t.Fatalf("golden state does not check: %v", err)
	}
	return pc, recs
}

// FuzzRestoreFromBuffer feeds arbitrary chunks to RestoreFromBuffer: it
// must never panic, and a refused state leaves the channel unchanged.
func FuzzRestoreFromBuffer(f *testing.F) {
	for _, name := range []string{"channel-v1.state", "channel-restart-v1.state", "channel-external-v1.state", "channel-device-v1.state", "channel-transfer-pages-v1.state"} {
		if golden, err := os.ReadFile(filepath.Join("testdata", "golden", name)); err == nil {
			f.Add(golden, uint16(0))
			f.Add(golden, uint16(200))
		}
	}
	r := newRig(f)
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		n := NewServer()
		must(t, n.SetGuest(r.guest))
		must(t, n.SetInterface(testType, testInst))
		must(t, n.SetProcessPacketCallbacks(echo, nil))
		before := observe(n)
		c := min(int(cut), len(data))
		var err error
		for _, ch := range [][]byte{data[:c], data[c:]} {
			if len(ch) == 0 {
				continue
			}
			if err = n.RestoreFromBuffer(ch); err != nil && !errors.Is(err, StatusMoreProcessingRequired) {
				break
			}
		}
		if err != nil && !errors.Is(err, StatusMoreProcessingRequired) {
			if after := observe(n); after != before {
				t.Fatalf("refused state changed the channel: %+v, was %+v", after, before)
			}
		}
	})
}

// TestForceNewChannel: with FORCE_NEW_CHANNEL the restored instance is
// rescinded, the channel offered anew under another id, and the restored
// transactions complete with STATUS_DEVICE_REMOVED.
func TestForceNewChannel(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 80)
	defer f.release()
	old, ok := f.g.Restored((&serverDevice{c: configure(t, f.g, newVSP(), echo)}).Offer())
	if !ok {
		t.Fatal("no restored channel")
	}
	v := newVSP()
	n := configure(t, f.g, v, echo)
	must(t, n.SetServerFlags(ServerForceNewChannel))
	must(t, n.Restore(f.state))
	must(t, n.Enable())
	if v.restored != 80 {
		t.Fatalf("%d packets restored", v.restored)
	}
	v.mu.Lock()
	for seq, st := range v.results {
		if st != StatusDeviceRemoved {
			t.Fatalf("transaction %d: %v", seq, st)
		}
	}
	got := len(v.results)
	v.mu.Unlock()
	if got != 80 {
		t.Fatalf("%d restored transactions completed", got)
	}
	n.mu.Lock()
	id := n.offered.ChannelID()
	n.mu.Unlock()
	if id == old.ChannelID {
		t.Fatalf("offered anew under the old id %d", id)
	}
	if _, still := f.g.Restored((&serverDevice{c: n}).Offer()); still {
		t.Fatal("the old instance still waits")
	}
}

// TestSaveChunksRestoreChunks: RestoreChunks takes a state one record per
// chunk; SaveChunks gives the same records back in chunks of the size
// asked for; a state cut short, one with a chunk after its End, and no
// state at all are refused.
func TestSaveChunksRestoreChunks(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 80)
	defer f.release()
	var perRecord [][]byte
	for off := 0; off < len(f.state); {
		size := savedstate.HeaderSize + (int(binary.LittleEndian.Uint32(f.state[off+8:]))+7)&^7
		perRecord = append(perRecord, f.state[off:off+size])
		off += size
	}
	n := configure(t, f.g, newVSP(), echo)
	must(t, n.RestoreChunks(perRecord))
	must(t, n.Enable())
	chunks, err := n.SaveChunks(512)
	must(t, err)
	var whole []byte
	for _, c := range chunks {
		whole = append(whole, c...)
	}
	sameRecords(t, f.state, whole)
	if len(chunks) < 2 {
		t.Fatalf("%d chunks of a %d-byte state at 512 bytes each", len(chunks), len(whole))
	}

	cut := configure(t, f.g, newVSP(), echo)
	if err := cut.RestoreChunks(chunks[:len(chunks)-1]); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("state without its last chunk: %v", err)
	}
	if err := configure(t, f.g, newVSP(), echo).RestoreChunks(nil); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("no chunks: %v", err)
	}
	extra := configure(t, f.g, newVSP(), echo)
	if err := extra.RestoreChunks(append(chunks[:len(chunks):len(chunks)], chunks[0])); err == nil {
		t.Fatal("a chunk after the End record was accepted")
	}
}

// TestSaveChunksBoundaries: SaveChunks cuts the state where a SaveContinue
// loop with a size-byte buffer does (growing it for a record that needs
// more), and every chunk is a buffer of its own, no longer than needed.
func TestSaveChunksBoundaries(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 80)
	defer f.release()
	n := configure(t, f.g, newVSP(), echo)
	must(t, n.Restore(f.state))
	must(t, n.Enable())
	for _, size := range []int{1, 100, 512, 4096, 1 << 20} {
		// The reference loop, with one buffer.
		must(t, n.SaveBegin())
		var want [][]byte
		buf := make([]byte, size)
		for {
			m, req, err := n.SaveContinue(buf)
			if m > 0 {
				want = append(want, bytes.Clone(buf[:m]))
			}
			if err == nil {
				break
			}
			if errors.Is(err, StatusBufferTooSmall) {
				buf = make([]byte, req)
			} else if !errors.Is(err, StatusBufferOverflow) {
				t.Fatal(err)
			}
		}
		n.SaveEnd()
		got, err := n.SaveChunks(size)
		must(t, err)
		if len(got) != len(want) {
			t.Fatalf("size %d: %d chunks, want %d", size, len(got), len(want))
		}
		for i := range got {
			if len(got[i]) != len(want[i]) || cap(got[i]) != len(got[i]) {
				t.Fatalf("size %d: chunk %d of %d bytes (cap %d), want %d", size, i, len(got[i]), cap(got[i]), len(want[i]))
			}
			if i > 0 && &got[i][0] == &got[i-1][0] {
				t.Fatalf("size %d: chunks %d and %d share a buffer", size, i-1, i)
			}
		}
		sameRecords(t, bytes.Join(want, nil), bytes.Join(got, nil))
	}
}
