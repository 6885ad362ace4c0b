package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/savedstate"
)

// slowFlush is a server whose packets starting with 'R' are restartable
// and finish on a goroutine of their own only when gate closes (a flush
// waiting for its disk); the others are echoed at once.
type slowFlush struct {
	gate    chan struct{}
	open    sync.Once
	suffix  string
	mu      sync.Mutex
	got     []uint64 // transaction ids of the 'R' packets indicated
	wg      sync.WaitGroup
	markErr error
}

func newSlowFlush(suffix string) *slowFlush {
	return &slowFlush{gate: make(chan struct{}), suffix: suffix}
}

// release lets the packets held so far, and every later one, finish.
func (f *slowFlush) release() { f.open.Do(func() { close(f.gate) }) }

func (f *slowFlush) process(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
	if len(payload) == 0 || payload[0] != 'R' {
		p.Complete(payload)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, p.TransactionID())
	f.mu.Unlock()
	if err := p.SetRestartable(); err != nil {
		f.mu.Lock()
		f.markErr = err
		f.mu.Unlock()
		p.Complete(nil)
		return
	}
	answer := append(bytes.Clone(payload), f.suffix...)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		<-f.gate
		p.Complete(answer)
	}()
}

func (f *slowFlush) indicated() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.got...)
}

// completions counts the client's completions by payload.
type completions struct {
	mu  sync.Mutex
	got map[string]int
}

func (cs *completions) send(t *testing.T, cl *Channel, payload string) {
	t.Helper()
	p, err := cl.AllocatePacket()
	must(t, err)
	p.SetCompletion(func(_ *OutPacket, st Status, b []byte) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.got == nil {
			cs.got = make(map[string]int)
		}
		key := "ok:"
		if st != StatusSuccess {
			key = "failed:"
		}
		cs.got[key+string(bytes.TrimRight(b, "\x00"))]++ // the ring pads payloads to 8 bytes
	})
	must(t, p.Send([]byte(payload), SendWaitForCompletion))
}

func (cs *completions) count(key string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.got[key]
}

func (cs *completions) total() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for _, v := range cs.got {
		n += v
	}
	return n
}

// pauseWithin runs Pause and fails the test if it has not returned within
// d: the pause must not wait for a restartable packet.
func pauseWithin(t *testing.T, c *Channel, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Pause() }()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(d):
		t.Fatalf("Pause waited %v for a restartable packet", d)
	}
}

// restartRecords decodes the restart records of a channel state.
func restartRecords(t *testing.T, state []byte) []*restartRecord {
	t.Helper()
	r := savedstate.NewRestorer(savedstate.Limits{})
	done, err := r.Feed(state)
	if err != nil || !done {
		t.Fatalf("state does not parse: done %v, %v", done, err)
	}
	var out []*restartRecord
	for _, rec := range r.Records() {
		if rec.Kind == KindChannelRestart {
			rr, err := decodeRestart(rec.Body)
			must(t, err)
			out = append(out, rr)
		}
	}
	return out
}

// restartFix is a serviced host's server paused while a restartable
// packet ("R1______", after an echoed "e1______") is still processed.
type restartFix struct {
	s   *svc
	old *slowFlush // release it (defer) before the cleanups run
	cl  *Channel
	cs  *completions
}

func pausedWithRestart(t *testing.T) *restartFix {
	t.Helper()
	s := newSvc(t)
	f := &restartFix{s: s, old: newSlowFlush("-old"), cs: &completions{}}
	s.server = configure(t, s.Guest, newVSP(), f.old.process)
	must(t, s.server.Enable())
	must(t, s.server.Start())
	f.cl = NewClient()
	must(t, f.cl.SetClient(s.Client))
	must(t, f.cl.SetInterface(testType, testInst))
	must(t, f.cl.SetProcessPacketCallbacks(ignore, nil))
	t.Cleanup(func() { f.cl.Cleanup() })
	must(t, f.cl.Enable())
	waitState(t, f.cl, StateActive)
	waitState(t, s.server, StateActive)
	f.cs.send(t, f.cl, "e1______")
	f.cs.send(t, f.cl, "R1______")
	eventually(t, "the restartable packet indicated", func() bool { return len(f.old.indicated()) == 1 })
	eventually(t, "the echo", func() bool { return f.cs.count("ok:e1______") == 1 })
	pauseWithin(t, s.server, 5*time.Second)
	return f
}

// TestRestartableAcrossServicing: a pause does not wait for a restartable
// packet still being processed; the save records it; what the old
// processing completes afterwards never reaches the guest; the restored
// channel indicates the packet again, and the guest gets exactly the new
// processing's completion.
func TestRestartableAcrossServicing(t *testing.T) {
	leakcheck.Check(t)
	f := pausedWithRestart(t)
	defer f.old.release()
	s, old, cl, cs := f.s, f.old, f.cl, f.cs
	if n := s.server.Outstanding(); n != 1 {
		t.Fatalf("%d packets outstanding after the pause, want the restartable one", n)
	}
	saved := s.Save(t)
	parts := chunks(t, s.server, []int{64, 4096})
	state := bytes.Join(parts, nil)
	rr := restartRecords(t, state)
	if len(rr) != 1 || string(rr[0].Payload) != "R1______" || !rr[0].Want || rr[0].TxID != old.indicated()[0] {
		t.Fatalf("restart records %+v, want R1 with its transaction id %#x", rr, old.indicated()[0])
	}

	// The old processing ends now: held, not written.
	before := s.server.Stats().PacketsOut
	old.release()
	old.wg.Wait()
	if n := s.server.Outstanding(); n != 0 {
		t.Fatalf("%d outstanding after the old completion", n)
	}
	if after := s.server.Stats().PacketsOut; after != before {
		t.Fatalf("the paused channel wrote %d packets after its save", after-before)
	}
	s.successor(t, saved)
	h2 := s.Host
	fresh := newSlowFlush("-new")
	defer fresh.release() // before the cleanups: a failed test must not leave Cleanup waiting
	fresh.release()       // the new disk is quick
	n := configure(t, s.Guest, newVSP(), fresh.process)
	must(t, n.RestoreChunks(parts))
	must(t, n.Enable())
	if got := fresh.indicated(); len(got) != 0 {
		t.Fatalf("indicated %v before Start", got)
	}
	must(t, n.Start())
	h2.Resume()
	s.server = n
	eventually(t, "the new completion", func() bool { return cs.count("ok:R1______-new") == 1 })
	if got := fresh.indicated(); len(got) != 1 || got[0] != rr[0].TxID {
		t.Fatalf("restored channel indicated %#x, want the saved transaction %#x", got, rr[0].TxID)
	}
	cs.send(t, cl, "e2______")
	eventually(t, "an echo after the restore", func() bool { return cs.count("ok:e2______") == 1 })
	fresh.wg.Wait()
	if cs.count("ok:R1______-old") != 0 || cs.total() != 3 {
		t.Fatalf("completions %v, want e1, R1-new and e2 once each", cs.got)
	}
}

// pausedPair is a rig's server (f's process) and client, the server
// paused while f holds the restartable packet the client sent with
// payload.
func pausedPair(t *testing.T, f *slowFlush, payload string) (*Channel, *completions) {
	t.Helper()
	r := newRig(t)
	s, cl := r.pair(t, f.process, ignore, StateCallbacks{}, StateCallbacks{})
	cs := &completions{}
	cs.send(t, cl, payload)
	eventually(t, "indicated", func() bool { return len(f.indicated()) == 1 })
	pauseWithin(t, s, 5*time.Second)
	return s, cs
}

// TestRestartableHeldUntilStart: without a servicing, a restartable
// packet completed while the channel is paused is held and sent at Start.
func TestRestartableHeldUntilStart(t *testing.T) {
	leakcheck.Check(t)
	f := newSlowFlush("-done")
	defer f.release() // before the cleanups: a failed test must not leave Cleanup waiting
	s, cs := pausedPair(t, f, "R9______")
	before := s.Stats().PacketsOut
	f.release()
	f.wg.Wait()
	if got := s.Stats().PacketsOut; got != before {
		t.Fatalf("a paused channel wrote %d packets", got-before)
	}
	must(t, s.Start())
	eventually(t, "the held completion", func() bool { return cs.count("ok:R9______-done") == 1 })
	if cs.total() != 1 {
		t.Fatalf("completions %v", cs.got)
	}
}

// TestRestartableCloseWaits: closing a paused channel waits for its
// restartable packet, which the pool reset would otherwise pull away from
// under the driver.
func TestRestartableCloseWaits(t *testing.T) {
	leakcheck.Check(t)
	f := newSlowFlush("")
	defer f.release() // before the cleanups: a failed test must not leave Cleanup waiting
	s, _ := pausedPair(t, f, "R1______")
	var closed atomic.Bool
	done := make(chan error, 1)
	go func() {
		err := s.Disable()
		closed.Store(true)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if closed.Load() {
		t.Fatal("Disable returned while a restartable packet was outstanding")
	}
	f.release()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Disable did not return after the packet completed")
	}
	f.wg.Wait()
}

// TestRestartableRefusesExternalData: a packet with external data cannot
// be restarted (the old process would go on touching guest memory).
func TestRestartableRefusesExternalData(t *testing.T) {
	r := newRig(t)
	errc := make(chan error, 1)
	s := r.newServer(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		errc <- p.SetRestartable()
		p.Complete(nil)
	}, StateCallbacks{})
	must(t, s.SetMaxExternalData(4096, 1))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, s, StateActive)
	waitState(t, c, StateActive)
	pfn, err := r.cl.Pages().Alloc(1)
	must(t, err)
	_, err = c.SendSynchronousRequest([]byte("x"), []gpa.Range{{ByteCount: 10, PFNs: []uint64{pfn}}}, 0, nil, time.Second)
	must(t, err)
	if err := <-errc; !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("SetRestartable with external data: %v", err)
	}
	if n := s.Outstanding(); n != 0 {
		t.Fatalf("%d outstanding", n)
	}
}

// TestGoldenRestartState keeps a format-1 channel state holding a
// restart record, from a real save (go test -update rewrites it): a later
// release must still decode and check it.
func TestGoldenRestartState(t *testing.T) {
	path := filepath.Join("testdata", "golden", "channel-restart-v1.state")
	if *update {
		f := pausedWithRestart(t)
		defer f.old.release()
		_, err := f.s.Host.SaveGuests()
		must(t, err)
		var buf bytes.Buffer
		must(t, f.s.server.Save(&buf))
		must(t, os.WriteFile(path, buf.Bytes(), 0o644))
		f.s.Stop() // parked by the save: the guest's channels close without it
	}
	pc, recs := checkGolden(t, path)
	if len(pc.redo) != 1 || string(pc.redo[0].Payload) != "R1______" || !pc.redo[0].Want {
		t.Fatalf("restart records %+v", pc.redo)
	}
	info, ok := savedstate.LookupKind(KindChannelRestart)
	if !ok || info.Name != "channel-restart" {
		t.Fatalf("kind not registered: %+v", info)
	}
	if _, err := info.Describe(recs[len(recs)-1].Body); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRejectsBadRestarts: restart records out of place, too many
// for the channel's packet pool, too long for its packets, or malformed
// are refused, and the channel is left as it was.
func TestRestoreRejectsBadRestarts(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "channel-restart-v1.state"))
	must(t, err)
	b, recs, err := savedstate.Parse(golden, savedstate.Limits{})
	must(t, err)
	last := len(recs) - 1
	if recs[last].Kind != KindChannelRestart {
		t.Fatalf("golden state ends with %s", savedstate.KindName(recs[last].Kind))
	}
	restart := func(payload []byte) savedstate.Record {
		r := restartRecord{TxID: 7, Want: true, Payload: payload}
		return savedstate.Record{Kind: KindChannelRestart, Flags: savedstate.FlagCritical, Body: r.encode()}
	}
	withRecs := func(mut func([]savedstate.Record) []savedstate.Record) []byte {
		sv, err := savedstate.NewSaver(b.Scope, b.Identity, mut(slices.Clone(recs)))
		must(t, err)
		return sv.Bytes()
	}
	cases := map[string][]byte{
		"completion after a restart": withRecs(func(r []savedstate.Record) []savedstate.Record {
			c := completionRecord{TxID: 1}
			r[0].Body = bytes.Clone(r[0].Body)
			binary.LittleEndian.PutUint32(r[0].Body[len(r[0].Body)-4:], 1) // one completion
			return append(r, savedstate.Record{Kind: KindChannelCompletion, Flags: savedstate.FlagCritical, Body: c.encode()})
		}),
		"more than the pool": withRecs(func(r []savedstate.Record) []savedstate.Record {
			for range DefaultMaxPacketCount {
				r = append(r, restart([]byte("x")))
			}
			return r
		}),
		"longer than a packet": withRecs(func(r []savedstate.Record) []savedstate.Record {
			return append(r[:last], restart(make([]byte, DefaultMaxPacketSize+8)))
		}),
		"bad boolean": withRecs(func(r []savedstate.Record) []savedstate.Record {
			r[last].Body = bytes.Clone(r[last].Body)
			r[last].Body[8] = 2
			return r
		}),
		"truncated body": withRecs(func(r []savedstate.Record) []savedstate.Record {
			r[last].Body = r[last].Body[:5]
			return r
		}),
	}
	for name, state := range cases {
		n := configure(t, nil, newVSP(), echo)
		before := observe(n)
		bb, rr, err := savedstate.Parse(state, savedstate.Limits{})
		must(t, err)
		if _, err := n.parseState(bb, rr, false); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := n.Restore(state); !errors.Is(err, StatusInvalidParameter) {
			t.Errorf("%s: %v", name, err)
		}
		if after := observe(n); after != before {
			t.Errorf("%s: channel changed", name)
		}
	}
}
