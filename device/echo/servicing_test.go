package echo

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/internal/testbus"
	"github.com/govmbus/govmbus/savedstate"
)

// stalled is an echo server whose guest stopped reading: the guest's
// client channel is paused, and it sent packets whose answers do not all
// fit in its ring, so some wait in the server's send queue (no more than
// the server's packet count: each holds an incoming packet).
type stalled struct {
	*testbus.Bus
	srv     *Server
	c       *channel.Channel // the guest's raw client channel
	sent    int
	count   int // the server's MaxPacketCount
	payload int // bytes a packet

	mu   sync.Mutex
	seqs []uint64 // the sequence numbers of the answers, as they came
}

// answers is how many answers the guest read.
func (s *stalled) answers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

// send sends n packets numbered from s.sent on.
func (s *stalled) send(t *testing.T, n int) {
	t.Helper()
	payload := make([]byte, s.payload)
	for range n {
		// A packet of its own each: one waiting for ring space is
		// still being sent.
		op, err := s.c.AllocatePacket()
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(payload, uint64(s.sent))
		if err := op.Send(payload, 0); err != nil {
			t.Fatal(err)
		}
		s.sent++
	}
}

// checkAnswers checks that the guest read every answer once, in order.
func (s *stalled) checkAnswers(t *testing.T) {
	t.Helper()
	waitFor(t, "every answer", func() bool { return s.answers() >= s.sent })
	time.Sleep(20 * time.Millisecond) // a duplicate would come meanwhile
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seqs) != s.sent {
		t.Fatalf("%d answers, want %d", len(s.seqs), s.sent)
	}
	for i, q := range s.seqs {
		if q != uint64(i) {
			t.Fatalf("answer %d carries packet %d", i, q)
		}
	}
}

const stalledPayload = 4096

func newStalled(t *testing.T, packets int) *stalled {
	t.Helper()
	return newStalledSized(t, packets, stalledPayload, DefaultRingPages, DefaultRingPages, false, func(s *stalled) bool {
		// Every packet read by the server, and some answers waiting
		// for room in the guest's ring.
		st := s.srv.Channel().Stats()
		return st.PacketsIn >= uint64(packets) && st.Queued > 0 && st.PacketsOut < uint64(packets)
	})
}

// newStalledSized is newStalled of packets of payload bytes, with the
// guest's incoming and outgoing rings of inPages and outPages, waiting
// until ready says the server is where the test wants it. With oneBatch
// the server is paused while the guest sends, so that it reads the
// packets as one batch.
func newStalledSized(t *testing.T, packets, payload, inPages, outPages int, oneBatch bool, ready func(*stalled) bool) *stalled {
	t.Helper()
	s := &stalled{count: 64, payload: payload}
	s.Bus = testbus.New(t, testbus.Config{Host: host.Config{OnGuest: func(g *host.Guest) {
		var err error
		if s.srv, err = NewServer(g, ServerConfig{MaxPacketCount: s.count}); err != nil {
			t.Error(err)
		}
	}}})
	t.Cleanup(func() {
		if s.c != nil {
			s.c.Cleanup()
		}
		if s.srv != nil {
			s.srv.Close()
		}
	})
	if s.srv == nil {
		t.FailNow()
	}
	ctx := testbus.Context(t)
	s.c = channel.NewClient()
	active := make(chan struct{}, 1)
	for _, err := range []error{
		s.c.SetClient(s.Client),
		s.c.SetInterface(InterfaceType, InterfaceInstance),
		s.c.SetRingPages(inPages, outPages),
		s.c.SetProcessPacketCallbacks(func(_ *channel.Channel, p *channel.Packet, payload []byte, _ channel.PacketFlags) {
			s.mu.Lock()
			s.seqs = append(s.seqs, binary.LittleEndian.Uint64(payload))
			s.mu.Unlock()
			p.Complete(nil)
		}, nil),
		s.c.SetStateCallbacks(channel.StateCallbacks{PostStarted: func(*channel.Channel) {
			select {
			case active <- struct{}{}:
			default:
			}
		}}),
		s.c.Enable(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-active:
	case <-ctx.Done():
		t.Fatal("the guest's channel did not open")
	}
	if err := s.c.Pause(); err != nil {
		t.Fatal(err)
	}
	if oneBatch {
		if err := s.srv.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	s.send(t, packets)
	if oneBatch {
		waitFor(t, "the packets in the ring", func() bool { return s.c.Stats().PacketsOut >= uint64(packets) })
		if err := s.srv.Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the server stalled", func() bool { return ready(s) })
	return s
}

var waitFor = testbus.Eventually

// pauseWithin pauses the server, failing if Pause does not return in time
// (it would wait for the guest, which does not read).
func (s *stalled) pauseWithin(t *testing.T, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.srv.Pause() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatalf("Pause still waiting after %v for a guest that does not read", d)
	}
}

// queuedRecords counts the packet records of a saved channel state.
func queuedRecords(t *testing.T, chunks [][]byte) int {
	t.Helper()
	_, recs, err := savedstate.Parse(bytes.Join(chunks, nil), savedstate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Kind == channel.KindChannelPacket {
			n++
		}
	}
	return n
}

// TestPauseDoesNotWaitForGuest: answers the guest has no room for stay in
// the send queue and go into the save; Pause does not wait for them, and
// after Start every answer reaches the guest once.
func TestPauseDoesNotWaitForGuest(t *testing.T) {
	leakcheck.Check(t)
	s := newStalled(t, 96)
	s.pauseWithin(t, 2*time.Second)
	chunks, err := s.srv.Save()
	if err != nil {
		t.Fatal(err)
	}
	if n := queuedRecords(t, chunks); n == 0 {
		t.Fatal("the saved state holds no queued answer")
	}
	if got := s.srv.limit; got > maxAnswerFactor*s.count || got <= s.count {
		t.Fatalf("answer limit %d after letting answers go, want in (%d, %d]", got, s.count, maxAnswerFactor*s.count)
	}
	if err := s.srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Start(); err != nil {
		t.Fatal(err)
	}
	s.checkAnswers(t)
	// More traffic than the pool's packets, with answers let go of still
	// holding slots: none is dropped for want of a free answer.
	s.send(t, 4*s.count)
	s.checkAnswers(t)
}

// TestRestoreSendsQueuedAnswers services a stalled server: the answers
// queued at the save reach the guest from the restored server, once each
// and in order, after the guest reads again.
func TestRestoreSendsQueuedAnswers(t *testing.T) {
	leakcheck.Check(t)
	s := newStalled(t, 96)
	s.pauseWithin(t, 2*time.Second)
	saved := s.Save(t)
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	chunks, err := s.srv.Save()
	if err != nil {
		t.Fatal(err)
	}
	if queuedRecords(t, chunks) == 0 {
		t.Fatal("the saved state holds no queued answer")
	}
	// The old process goes without a word to the guest.
	s.Stop()
	s.srv.Close()
	s.srv = nil
	h2, guests, err := host.Restore(host.Config{}, saved)
	if err != nil {
		t.Fatal(err)
	}
	s.Host = h2
	if s.srv, err = RestoreServer(guests[0], ServerConfig{MaxPacketCount: s.count}, chunks); err != nil {
		t.Fatal(err)
	}
	h2.Resume()
	if err := s.c.Start(); err != nil {
		t.Fatal(err)
	}
	s.checkAnswers(t)
	s.send(t, 2*s.count)
	s.checkAnswers(t)
}

// TestStopIndicationsThenPause: StopIndications stops the server's
// packets at once, Pause finishes, and Start lets pings through again;
// StopIndications then Start (no Pause) resumes too.
func TestStopIndicationsThenPause(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	ping := func() {
		t.Helper()
		res, err := r.c.Ping(context.Background(), 10, 64, 5*time.Second)
		if err != nil || res.Lost+res.Corrupted != 0 {
			t.Fatalf("%v %+v", err, res)
		}
	}
	ping()
	r.srv.StopIndications()
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	if st := r.srv.Channel().State(); st != channel.StatePaused {
		t.Fatalf("state %v after Pause", st)
	}
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	ping()
	r.srv.StopIndications()
	if err := r.srv.Start(); err != nil {
		t.Fatal(err)
	}
	ping()
}

// TestServicingRxBuffer services a server in receive-buffer mode while a
// stream runs and the guest holds answers it has not read (its channel
// paused): those ranges are in the saved state, the restored server maps
// the buffer again and reuses none before the guest completes them, and
// the stream ends with every packet back once and intact.
func TestServicingRxBuffer(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, ServerConfig{}, ClientConfig{})
	if err := r.c.UseRxBuffer(testbus.Context(t), 1<<20); err != nil {
		t.Fatal(err)
	}
	const count = 20000
	type result struct {
		res StreamResult
		err error
	}
	// The guest does not read until after the servicing: the answers to
	// the stream's first window hold their ranges across it.
	if err := r.c.Channel().Pause(); err != nil {
		t.Fatal(err)
	}
	const window = 200
	done := make(chan result, 1)
	go func() {
		res, err := r.c.Stream(context.Background(), StreamConfig{Payload: 1024, Count: count, Window: window, Idle: 10 * time.Second})
		done <- result{res, err}
	}()
	ts := r.srv.rx.Load()
	waitFor(t, "the window's answers in the guest's hands", func() bool { return ts.InUse() == window*1024 })
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	held := ts.InUse()
	saved := r.Save(t)
	defer func() {
		for i := range saved {
			saved[i].Close()
		}
	}()
	chunks, err := r.srv.Save()
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := savedstate.Parse(bytes.Join(chunks, nil), savedstate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	xrecs := 0
	for _, rec := range recs {
		if rec.Kind == channel.KindChannelTransferPages {
			xrecs++
		}
	}
	if xrecs != 1 {
		t.Fatalf("%d transfer-page records, want 1", xrecs)
	}
	r.Stop()
	r.srv.Close()
	r.srv = nil
	h2, guests, err := host.Restore(host.Config{}, saved)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = h2
	if r.srv, err = RestoreServer(guests[0], ServerConfig{}, chunks); err != nil {
		t.Fatal(err)
	}
	ts2 := r.srv.rx.Load()
	var restored uint64
	if ts2 != nil {
		restored = ts2.InUse()
	}
	in0 := r.c.RxBufferPackets()
	h2.Resume()
	// The guest reads again before anything is judged: a failure must
	// not leave the stream (and the test's cleanup) waiting.
	if err := r.c.Channel().Start(); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if ts2 == nil || restored != held {
		t.Fatalf("restored server: buffer %v holding %d bytes, want %d", ts2 != nil, restored, held)
	}
	if res.err != nil || res.res.Received != count || res.res.Lost+res.res.Corrupted+res.res.Duplicated != 0 {
		t.Fatalf("%v %+v", res.err, res.res)
	}
	if r.c.RxBufferPackets() == in0 {
		t.Fatal("no answer through the buffer after the restore")
	}
	waitFor(t, "every range given back", func() bool { return ts2.InUse() == 0 })
}

// TestPauseSendsBurst: small answers wait in a burst for their batch's
// end; a batch that ends without it (one batch of 400 packets, and the
// server holds every packet it may: half in the burst, half in answers
// waiting for the guest to read) leaves them there, and a pause must send them (into the send queue,
// the guest being full) rather than wait for them. Every answer then
// reaches the guest once, in order.
func TestPauseSendsBurst(t *testing.T) {
	leakcheck.Check(t)
	s := newStalledSized(t, 400, 64, 2, 16, true, func(s *stalled) bool {
		return s.srv.Channel().Outstanding() == s.count && s.srv.burst != nil && s.srv.burst.n > 0
	})
	s.pauseWithin(t, 2*time.Second)
	if err := s.srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Start(); err != nil {
		t.Fatal(err)
	}
	s.checkAnswers(t)
}
