package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/transport"
)

// holder keeps indicated packets for the test to complete later.
type holder struct {
	mu   sync.Mutex
	pkts []*Packet
	data []string
}

func (h *holder) process(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
	h.mu.Lock()
	h.pkts = append(h.pkts, p)
	h.data = append(h.data, string(bytes.TrimRight(payload, "\x00")))
	h.mu.Unlock()
}

func (h *holder) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.data...)
}

func (h *holder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pkts)
}

func (h *holder) take() []*Packet {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pkts
	h.pkts = nil
	return p
}

func sendAsync(t testing.TB, c *Channel, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		p, err := c.AllocatePacket()
		must(t, err)
		p.SetCompletion(func(p *OutPacket, _ Status, _ []byte) { p.Free() })
		must(t, p.Send([]byte(m), 0))
	}
}

func TestPauseWaitsForCompletion(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	var srec recorder
	s, c := r.pair(t, h.process, ignore, srec.callbacks(), StateCallbacks{})
	sendAsync(t, c, "a", "b")
	eventually(t, "two packets", func() bool { return h.count() == 2 })
	paused := make(chan error, 1)
	go func() { paused <- s.Pause() }()
	time.Sleep(30 * time.Millisecond)
	select {
	case err := <-paused:
		t.Fatalf("Pause returned with packets outstanding: %v", err)
	default:
	}
	pk := h.take()
	pk[0].Complete(nil)
	time.Sleep(10 * time.Millisecond)
	select {
	case <-paused:
		t.Fatal("Pause returned with a packet outstanding")
	default:
	}
	pk[1].Complete(nil)
	must(t, <-paused)
	if s.State() != StatePaused || s.Outstanding() != 0 {
		t.Fatalf("state %v, %d outstanding", s.State(), s.Outstanding())
	}
	// No ProcessPacket after Suspend until Started.
	sendAsync(t, c, "c")
	time.Sleep(30 * time.Millisecond)
	if h.count() != 0 {
		t.Fatal("packet indicated while paused")
	}
	srec.reset()
	must(t, s.Start())
	eventually(t, "packet after Start", func() bool { return h.count() == 1 })
	if got := srec.String(); got != "Started,PostStarted" {
		t.Fatalf("callbacks on Start: %s", got)
	}
	for _, p := range h.take() {
		p.Complete(nil)
	}
}

func TestProcessingCompleteCounts(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	var counts []int
	var mu sync.Mutex
	s := r.newServer(t, func(c *Channel, p *Packet, b []byte, f PacketFlags) { h.process(c, p, b, f); p.Complete(nil) }, StateCallbacks{})
	must(t, s.SetProcessPacketCallbacks(func(c *Channel, p *Packet, b []byte, f PacketFlags) { h.process(c, p, b, f); p.Complete(nil) },
		func(_ *Channel, n int) { mu.Lock(); counts = append(counts, n); mu.Unlock() }))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	must(t, c.Enable())
	waitState(t, s, StateStopped)
	waitState(t, c, StateActive)
	// Ten packets wait in the ring; Start indicates them as one batch.
	var msgs []string
	for i := range 10 {
		msgs = append(msgs, fmt.Sprintf("m%d", i))
	}
	sendAsync(t, c, msgs...)
	must(t, s.Start())
	eventually(t, "ten packets", func() bool { return h.count() == 10 })
	eventually(t, "ProcessingComplete", func() bool { mu.Lock(); defer mu.Unlock(); return len(counts) > 0 })
	mu.Lock()
	if len(counts) != 1 || counts[0] != 10 {
		t.Fatalf("ProcessingComplete counts %v, want [10]", counts)
	}
	mu.Unlock()
	if d := h.seen(); strings.Join(d, ",") != strings.Join(msgs, ",") {
		t.Fatalf("order %v", d)
	}
	sendAsync(t, c, "x")
	eventually(t, "second batch", func() bool { mu.Lock(); defer mu.Unlock(); return len(counts) == 2 && counts[1] == 1 })
}

func TestCompletionOnlyWhenRequested(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, c := r.pair(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { p.Complete([]byte("answer..")) }, ignore, StateCallbacks{}, StateCallbacks{})
	p, err := c.AllocatePacket()
	must(t, err)
	got := make(chan string, 2)
	p.SetCompletion(func(_ *OutPacket, st Status, b []byte) { got <- fmt.Sprintf("%v:%s", st == StatusSuccess, b) })
	must(t, p.Send([]byte("no completion"), 0))
	if g := <-got; g != "true:" {
		t.Fatalf("completion without WAIT_FOR_COMPLETION: %q", g)
	}
	eventually(t, "server saw it", func() bool {
		return s.Outstanding() == 0 && ringWriteIndex(s) == 0 && readIndexMoved(s)
	})
	time.Sleep(20 * time.Millisecond)
	if w := ringWriteIndex(s); w != 0 {
		t.Fatalf("server wrote %d bytes of completion nobody asked for", w)
	}
	must(t, p.Send([]byte("completion"), SendWaitForCompletion))
	if g := <-got; g != "true:answer.." {
		t.Fatalf("completion %q", g)
	}
	if w := ringWriteIndex(s); w == 0 {
		t.Fatal("no completion written")
	}
	p.Free()
}

func ringWriteIndex(c *Channel) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctl, _ := ring.Inspect(c.hc.Out)
	return ctl.WriteIndex
}

func readIndexMoved(c *Channel) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctl, _ := ring.Inspect(c.hc.In)
	return ctl.ReadIndex != 0
}

func TestDeferToPassive(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	release := make(chan struct{})
	var rxCalls, workerCalls atomic.Int32
	var workerBlocked atomic.Bool
	proc := func(_ *Channel, p *Packet, payload []byte, _ PacketFlags) {
		if string(payload[:4]) == "slow" {
			if workerBlocked.CompareAndSwap(false, true) {
				rxCalls.Add(1)
				p.DeferToPassive()
				return
			}
			workerCalls.Add(1)
			<-release // blocking is allowed here
			p.Complete(nil)
			return
		}
		rxCalls.Add(1)
		p.Complete(nil)
	}
	_, c := r.pair(t, proc, ignore, StateCallbacks{}, StateCallbacks{})
	sendAsync(t, c, "slow")
	eventually(t, "deferred packet on the worker", func() bool { return workerCalls.Load() == 1 })
	// While the worker blocks, the receive goroutine keeps indicating.
	sendAsync(t, c, "fast", "fast")
	eventually(t, "packets while the worker blocks", func() bool { return rxCalls.Load() == 3 })
	close(release)
}

func TestBlockingProcessing(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	// ProcessPacket blocks on a synchronous request of its own: the
	// receive goroutine must keep routing completions meanwhile. (A
	// client's: a server's request never waits.)
	done := make(chan error, 1)
	proc := func(ch *Channel, p *Packet, payload []byte, _ PacketFlags) {
		if string(payload[:4]) == "ping" {
			resp := make([]byte, 8)
			_, err := ch.SendSynchronousRequest([]byte("back...."), nil, 0, resp, 5*time.Second)
			done <- err
		}
		p.Complete(nil)
	}
	s := r.newServer(t, echo, StateCallbacks{})
	c := r.newClient(t, proc, StateCallbacks{})
	must(t, c.SetBlockingProcessing(true))
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, s, StateActive)
	waitState(t, c, StateActive)
	sendAsync(t, s, "ping")
	must(t, <-done)
}

func TestPacketFailStopsQueue(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var n atomic.Int32
	_, c := r.pair(t, func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		n.Add(1)
		p.Fail()
	}, ignore, StateCallbacks{}, StateCallbacks{})
	sendAsync(t, c, "bad")
	eventually(t, "first packet", func() bool { return n.Load() == 1 })
	sendAsync(t, c, "more", "more")
	time.Sleep(30 * time.Millisecond)
	if n.Load() != 1 {
		t.Fatalf("%d packets indicated after PacketFail", n.Load())
	}
}

func TestQuotaCapsOutstanding(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	s, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
	must(t, s.SetTransactionQuota(2))
	sendAsync(t, c, "1", "2", "3", "4", "5")
	eventually(t, "two packets", func() bool { return h.count() == 2 })
	time.Sleep(20 * time.Millisecond)
	if h.count() != 2 || s.Outstanding() != 2 {
		t.Fatalf("%d packets indicated with quota 2", h.count())
	}
	// A synchronous request's completion still passes the quota.
	var total []*Packet
	total = append(total, h.take()...)
	total[0].Complete(nil)
	eventually(t, "third packet", func() bool { return h.count() == 1 })
	total = append(total, h.take()...)
	must(t, s.SetTransactionQuota(DefaultMaxPacketCount))
	eventually(t, "the rest", func() bool { return h.count() == 2 })
	total = append(total, h.take()...)
	for _, p := range total[1:] {
		p.Complete(nil)
	}
	if d := h.seen(); d[2] != "3" || d[4] != "5" {
		t.Fatalf("order %v", d)
	}
}

func TestPoolSizedByMaxPacketCount(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	s := r.newServer(t, h.process, StateCallbacks{})
	must(t, s.SetMaxPacketCount(3))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, s, StateActive)
	waitState(t, c, StateActive)
	sendAsync(t, c, "1", "2", "3", "4")
	eventually(t, "three packets", func() bool { return h.count() == 3 })
	time.Sleep(20 * time.Millisecond)
	if h.count() != 3 {
		t.Fatalf("%d packets outstanding with a pool of 3", h.count())
	}
	for _, p := range h.take() {
		p.Complete(nil)
	}
	eventually(t, "fourth packet", func() bool { return h.count() == 1 })
	h.take()[0].Complete(nil)
}

func TestSendSynchronousRequestStatuses(t *testing.T) {
	leakcheck.Check(t)
	t.Run("success and buffer too small", func(t *testing.T) {
		r := newRig(t)
		_, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
		resp := make([]byte, 16)
		n, err := c.SendSynchronousRequest([]byte("0123456789abcdef"), nil, 0, resp, time.Second)
		if err != nil || n != 16 || string(resp) != "0123456789abcdef" {
			t.Fatalf("%d %q %v", n, resp, err)
		}
		n, err = c.SendSynchronousRequest([]byte("0123456789abcdef"), nil, 0, resp[:4], time.Second)
		if !errors.Is(err, StatusBufferTooSmall) || n != 16 || string(resp[:4]) != "0123" {
			t.Fatalf("short buffer: %d %v", n, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		r := newRig(t)
		var h holder
		_, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
		_, err := c.SendSynchronousRequest([]byte("slow"), nil, 0, nil, 20*time.Millisecond)
		if !errors.Is(err, StatusCancelled) {
			t.Fatalf("err %v", err)
		}
		// The late completion is absorbed.
		eventually(t, "request", func() bool { return h.count() == 1 })
		h.take()[0].Complete([]byte("late"))
		time.Sleep(10 * time.Millisecond)
	})
	t.Run("device removed", func(t *testing.T) {
		r := newRig(t)
		var h holder
		s, c := r.pair(t, h.process, ignore, StateCallbacks{}, StateCallbacks{})
		errc := make(chan error, 1)
		go func() {
			_, err := c.SendSynchronousRequest([]byte("never"), nil, 0, nil, NoTimeout)
			errc <- err
		}()
		eventually(t, "request", func() bool { return h.count() == 1 })
		go func() {
			time.Sleep(10 * time.Millisecond)
			h.take()[0].Fail() // lets the server's Suspend finish, without a completion
		}()
		must(t, s.Disable())
		if err := <-errc; !errors.Is(err, StatusDeviceRemoved) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("buffer overflow", func(t *testing.T) {
		r := newRig(t)
		s := r.newServer(t, ignore, StateCallbacks{})
		c := r.newClient(t, ignore, StateCallbacks{})
		must(t, c.SetRingPages(2, 2))
		must(t, s.Enable())
		must(t, c.Enable())
		waitState(t, c, StateActive) // the server is not started: nobody reads
		big := make([]byte, 1000)
		for i := 0; ; i++ {
			if i > 10 {
				t.Fatal("ring never filled")
			}
			p, err := c.AllocatePacket()
			must(t, err)
			err = p.send(big, nil, 0, true)
			if errors.Is(err, StatusBufferOverflow) {
				p.Free()
				break
			}
			must(t, err)
		}
		_, err := c.SendSynchronousRequest(big, nil, 0, nil, 0)
		if !errors.Is(err, StatusBufferOverflow) {
			t.Fatalf("err %v", err)
		}
		must(t, s.Start())
	})
}

func TestFullRingQueuesInOrder(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var mu sync.Mutex
	var seen []uint32
	s := r.newServer(t, func(_ *Channel, p *Packet, b []byte, _ PacketFlags) {
		mu.Lock()
		seen = append(seen, binary.LittleEndian.Uint32(b))
		mu.Unlock()
		p.Complete(b[:8])
	}, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 2))
	must(t, s.Enable())
	must(t, c.Enable())
	waitState(t, s, StateStopped)
	waitState(t, c, StateActive)
	const n = 100
	var order []uint32
	var omu sync.Mutex
	all := make(chan struct{})
	msg := make([]byte, 512)
	for i := range n {
		p, err := c.AllocatePacket()
		must(t, err)
		p.SetCompletion(func(p *OutPacket, st Status, b []byte) {
			if st != StatusSuccess {
				t.Errorf("status %v", st)
			}
			omu.Lock()
			order = append(order, binary.LittleEndian.Uint32(b))
			if len(order) == n {
				close(all)
			}
			omu.Unlock()
		})
		binary.LittleEndian.PutUint32(msg, uint32(i))
		must(t, p.Send(msg, SendWaitForCompletion)) // queued: nobody reads yet
	}
	msg[0] = 0xFF // the queued copies are the packets'
	must(t, s.Start())
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		t.Fatal("queue not drained")
	}
	mu.Lock()
	defer mu.Unlock()
	omu.Lock()
	defer omu.Unlock()
	for i := range n {
		if seen[i] != uint32(i) || order[i] != uint32(i) {
			t.Fatalf("packet %d: server saw %d, completion %d", i, seen[i], order[i])
		}
	}
}

func TestMTUAndRingLimits(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	_, c := r.pair(t, ignore, ignore, StateCallbacks{}, StateCallbacks{})
	p, err := c.AllocatePacket()
	must(t, err)
	defer p.Free()
	if err := p.Send(make([]byte, MTU), 0); !errors.Is(err, StatusInvalidBufferSize) {
		t.Fatalf("MTU: %v", err)
	}
	if err := p.Send(make([]byte, 64<<10), 0); !errors.Is(err, StatusInvalidBufferSize) {
		t.Fatalf("larger than the ring: %v", err)
	}
	if err := p.SendExternal(nil, []gpa.Range{{ByteCount: 1, PFNs: []uint64{1}}}, 0); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("external data without wait-for-completion: %v", err)
	}
}

func TestExternalData(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	type result struct {
		data  []byte
		roErr error
		err   error
		flags PacketFlags
	}
	res := make(chan result, 4)
	proc := func(_ *Channel, p *Packet, payload []byte, flags PacketFlags) {
		var out result
		out.flags = flags
		v, err := p.ExternalData(guestmem.ReadOnly)
		if err != nil {
			out.err = err
		} else {
			out.data = make([]byte, v.Len())
			v.ReadAt(out.data, 0)
			_, out.roErr = v.WriteAt([]byte{1}, 0)
			if string(payload[:5]) == "write" {
				w, err := p.ExternalData(guestmem.ReadWrite)
				if err == nil {
					_, err = w.WriteAt([]byte("from host"), 0)
				}
				out.err = err
			}
		}
		res <- out
		p.Complete(nil)
	}
	s := r.newServer(t, proc, StateCallbacks{})
	must(t, s.SetMaxExternalData(3*4096, 4))
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, s, StateActive)
	waitState(t, c, StateActive)

	pfn, err := r.cl.Pages().Alloc(4)
	must(t, err)
	mem := r.cl.Memory().Bytes()
	copy(mem[pfn*4096+100:], "guest data")
	rng := []gpa.Range{{ByteCount: 10, ByteOffset: 100, PFNs: []uint64{pfn}}}
	_, err = c.SendSynchronousRequest([]byte("read...."), rng, 0, nil, time.Second)
	must(t, err)
	got := <-res
	if got.err != nil || string(got.data) != "guest data" || !errors.Is(got.roErr, guestmem.ErrReadOnly) || got.flags != PacketFlagExternalData {
		t.Fatalf("read: %+v", got)
	}
	_, err = c.SendSynchronousRequest([]byte("write..."), rng, 0, nil, time.Second)
	must(t, err)
	if got := <-res; got.err != nil || string(mem[pfn*4096+100:pfn*4096+109]) != "from host" {
		t.Fatalf("write: %+v", got)
	}
	// Outside guest memory.
	far := []gpa.Range{{ByteCount: 10, PFNs: []uint64{1 << 30}}}
	_, err = c.SendSynchronousRequest([]byte("read...."), far, 0, nil, time.Second)
	must(t, err)
	if got := <-res; !errors.Is(got.err, StatusInvalidParameter) || !errors.Is(got.err, guestmem.ErrOutOfBounds) {
		t.Fatalf("out of bounds: %+v", got)
	}
	// Past the maximum external data.
	big := []gpa.Range{{ByteCount: 4 * 4096, PFNs: []uint64{pfn, pfn + 1, pfn + 2, pfn + 3}}}
	_, err = c.SendSynchronousRequest([]byte("read...."), big, 0, nil, time.Second)
	must(t, err)
	if got := <-res; !errors.Is(got.err, StatusInvalidParameter) {
		t.Fatalf("too large: %+v", got)
	}
	// No external data at all.
	_, err = c.SendSynchronousRequest([]byte("plain..."), nil, 0, nil, time.Second)
	must(t, err)
	if got := <-res; !errors.Is(got.err, StatusInvalidParameter) || got.flags != 0 {
		t.Fatalf("no external data: %+v", got)
	}
}

func TestOneGoroutinePerDirection(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	// transport's signal watch, one goroutine per process while any Event
	// is open, runs from here on: it is no channel's.
	keep, err := transport.NewEvent()
	must(t, err)
	defer keep.Close()
	before := runtime.NumGoroutine()
	s, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
	// Each open channel: a worker and a receive goroutine.
	if got := runtime.NumGoroutine() - before; got > 4 {
		t.Fatalf("%d goroutines for two channels", got)
	}
	must(t, c.Disable())
	must(t, s.Disable())
	eventually(t, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

func TestQueuedCompletions(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	big := make([]byte, 1024)
	s := r.newServer(t, func(_ *Channel, p *Packet, b []byte, _ PacketFlags) {
		copy(big, b[:4])
		p.Complete(big) // the host→guest ring fills: completions queue
	}, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 16))
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	must(t, c.Pause()) // the client reads nothing, completions included
	const n = 12
	var mu sync.Mutex
	var order []uint32
	all := make(chan struct{})
	for i := range n {
		p, err := c.AllocatePacket()
		must(t, err)
		p.SetCompletion(func(_ *OutPacket, st Status, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if st != StatusSuccess || len(b) != 1024 {
				t.Errorf("completion %v, %d bytes", st, len(b))
			}
			order = append(order, binary.LittleEndian.Uint32(b))
			if len(order) == n {
				close(all)
			}
		})
		msg := make([]byte, 8)
		binary.LittleEndian.PutUint32(msg, uint32(i))
		must(t, p.Send(msg, SendWaitForCompletion))
	}
	eventually(t, "server processed all", func() bool { return s.Outstanding() == 0 && queued(s) > 0 })
	must(t, c.Start())
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		t.Fatal("completions not delivered")
	}
	for i, v := range order {
		if v != uint32(i) {
			t.Fatalf("completion %d is for %d", i, v)
		}
	}
	eventually(t, "server queue empty", func() bool { return queued(s) == 0 })
}

// queued counts the server's send queue.
func queued(c *Channel) int {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	n := 0
	for q := c.qHead; q != nil; q = q.next {
		n++
	}
	return n
}

// TestServerSyncRequestNeverWaits: KMCL lets the root call
// VmbChannelSendSynchronousRequest only with a zero timeout and without
// waiting for the completion, so a host cannot hang on its guest; here a
// guest that never completes cannot hold the server's call.
func TestServerSyncRequestNeverWaits(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	var h holder
	s, _ := r.pair(t, echo, h.process, StateCallbacks{}, StateCallbacks{})
	done := make(chan error, 1)
	go func() {
		_, err := s.SendSynchronousRequest([]byte("no wait."), nil, 0, make([]byte, 8), 0)
		done <- err
	}()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(10 * time.Second):
		for _, p := range h.take() {
			p.Complete(nil) // lets the request, and the teardown, end
		}
		t.Fatalf("a server's synchronous request waits for a guest that never completes (then: %v)", <-done)
	}
	eventually(t, "the guest got it", func() bool { return h.count() == 1 })
	for _, p := range h.take() {
		if p.CompletionRequested() {
			t.Fatal("a server's synchronous request asked for a completion")
		}
		p.Complete(nil)
	}
	if _, err := s.SendSynchronousRequest([]byte("wait...."), nil, SendWaitForCompletion, nil, 0); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("server request waiting for completion: %v", err)
	}
	for _, to := range []time.Duration{time.Second, NoTimeout} {
		if _, err := s.SendSynchronousRequest([]byte("wait...."), nil, 0, nil, to); !errors.Is(err, StatusInvalidParameter) {
			t.Fatalf("server request with timeout %v: %v", to, err)
		}
	}
}
