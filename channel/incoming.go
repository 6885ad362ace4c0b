package channel

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/ring"
)

// Packet states.
const (
	pktFree       uint8 = iota
	pktIndicated        // given to ProcessPacket, not completed
	pktDeferred         // queued for the worker
	pktCompleting       // completed; its completion waits in the send queue
)

// Packet is an incoming packet, KMCL's VMBPACKETCOMPLETION handle. It comes
// from a pool of SetMaxPacketCount objects: the bytes the sender put in the
// ring are copied into the Packet's own buffer before ProcessPacket sees
// them, so they stay valid (and unchanged by the peer) until the packet is
// completed, while the ring space goes back to the sender at once.
//
// A Packet must be completed exactly once, with Complete or Fail; it must
// not be used afterwards.
type Packet struct {
	c     *Channel
	state uint8
	buf   []byte
	n     int
	view  []byte // the payload in the ring, during ProcessPacket (SetInPlacePayloads)
	cn    int    // completion payload length while pktCompleting
	txid  uint64
	want  bool // the sender asked for a completion
	// restart: SetRestartable marked it (listed in Channel.restarts).
	restart bool
	ranges  []gpa.Range
	pfns    []uint64
	ctx     []byte
	q       qitem
}

// Channel is the packet's channel.
func (p *Packet) Channel() *Channel { return p.c }

// TransactionID is the sender's transaction id.
func (p *Packet) TransactionID() uint64 { return p.txid }

// CompletionRequested reports whether the sender asked for a completion.
func (p *Packet) CompletionRequested() bool { return p.want }

// Context is the packet's context area of SetPacketContextSize bytes,
// zeroed before ProcessPacket.
func (p *Packet) Context() []byte { return p.ctx }

// Payload is the packet's payload (the same slice ProcessPacket got; with
// SetInPlacePayloads valid only until ProcessPacket returns).
func (p *Packet) Payload() []byte {
	if p.view != nil {
		return p.view
	}
	return p.buf[:p.n]
}

func (p *Packet) checkOwned(what string) {
	if p.state != pktIndicated {
		panic("channel: " + what + " of a packet that is not outstanding")
	}
}

// Complete completes the packet (KMCL VmbChannelPacketComplete). If the
// sender asked for a completion, one is sent with payload (which may be
// the packet's own payload); otherwise payload is ignored. The completion
// never fails for lack of ring space: it waits in the channel's send queue.
// Complete may be called from any goroutine.
func (p *Packet) Complete(payload []byte) {
	c := p.c
	if !p.want {
		c.retire(p, "Complete", false)
		return
	}
	c.mu.Lock()
	p.checkOwned("Complete")
	c.mu.Unlock()
	c.sendMu.Lock()
	ep := c.sendEP
	if ep == nil {
		c.sendMu.Unlock()
		c.release(p)
		return
	}
	if c.holdDone {
		c.holdLocked(p, payload)
		c.sendMu.Unlock()
		return
	}
	if p.restart {
		// Before the completion is written or queued, under sendMu: a
		// save (which holds sendMu) sees the packet as still to do or
		// as completed, never as both.
		c.mu.Lock()
		c.unrestartLocked(p)
		c.mu.Unlock()
	}
	if c.qHead == nil {
		err := ep.w.WriteCompletion(p.txid, payload)
		if err == nil || !errors.Is(err, ring.ErrFull) {
			// Written, or the ring is broken or the completion can
			// never fit: nothing more can be sent, so it is dropped.
			var sig bool
			if err == nil {
				c.st.wrote(len(payload))
				if !c.txHold {
					sig = ep.w.Commit()
					c.st.commit(sig)
				}
			}
			c.sendMu.Unlock()
			if sig {
				ep.out.Signal() //nolint:errcheck // a gone peer is noticed by the control plane
			}
			c.release(p)
			return
		}
	}
	if cap(p.buf) < len(payload) {
		p.buf = make([]byte, len(payload))
	}
	p.cn = copy(p.buf[:cap(p.buf)], payload)
	c.mu.Lock()
	p.state = pktCompleting
	c.mu.Unlock()
	c.enqueue(&p.q)
	done, sig := c.flushLocked(ep)
	c.sendMu.Unlock()
	c.finishSent(ep, done, sig)
	c.uncount(p)
}

// Fail marks the packet malformed (KMCL VmbChannelPacketFail): it is
// completed without a completion and the channel's incoming queue stops;
// no more packets are indicated until the channel is closed and opened
// again.
func (p *Packet) Fail() { p.c.retire(p, "Fail", true) }

// DeferToPassive hands the packet to the channel's worker goroutine, which
// calls ProcessPacket with it again; there it may block (KMCL
// VmbChannelPacketDeferToPassive). Packets deferred run in the order they
// were deferred.
func (p *Packet) DeferToPassive() {
	c := p.c
	if p.view != nil {
		// In place: the worker runs after the ring batch ended.
		p.n = copy(p.grow(len(p.view)), p.view)
		p.view = nil
	}
	c.mu.Lock()
	p.checkOwned("DeferToPassive")
	p.state = pktDeferred
	c.mu.Unlock()
	c.work.push(workItem{p: p}) // never blocks
}

// ExternalData returns the memory a GPA-direct packet describes as a
// bounds-checked view of guest memory (KMCL VmbChannelPacketGetExternalData;
// never asynchronous here). With access ReadOnly the view refuses writes.
// The view is valid until the packet is completed. A packet without
// external data, or whose data passes SetMaxExternalData or lies outside
// guest memory, gives an error matching StatusInvalidParameter.
func (p *Packet) ExternalData(access guestmem.Access) (*guestmem.RangeView, error) {
	c := p.c
	c.mu.Lock()
	owned := p.state == pktIndicated
	ep := c.ep
	c.mu.Unlock()
	if !owned {
		panic("channel: ExternalData of a packet that is not outstanding")
	}
	if len(p.ranges) == 0 {
		return nil, fail(StatusInvalidParameter, "packet has no external data")
	}
	if ep == nil {
		return nil, fail(StatusDeviceRemoved, "external data")
	}
	var bytes uint64
	for _, r := range p.ranges {
		bytes += uint64(r.ByteCount)
	}
	if bytes > uint64(c.cfg.maxExtSize) {
		return nil, fail(StatusInvalidParameter, "external data of %d bytes passes the maximum %d", bytes, c.cfg.maxExtSize)
	}
	v, err := ep.mem.RangeView(p.ranges, access)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	return v, nil
}

// SetTransactionQuota caps the incoming packets outstanding at once (KMCL
// VmbChannelSetTransactionQuota): while n packets are indicated and not
// completed, the receive loop stops reading data packets from the ring
// (completions still pass). The pool size, SetMaxPacketCount, bounds them
// too, so a quota at least that large lifts the cap. The KMCL page allows
// only a quota above zero: 0 or less fails with StatusInvalidParameter2
// (KMCL's function returns nothing; here the misuse is reported) and
// leaves the quota as it was. Unlike KMCL, raising the quota restarts a
// receive loop that the quota stopped, without waiting for a completion.
func (c *Channel) SetTransactionQuota(n int) error {
	if n <= 0 {
		return fail(StatusInvalidParameter2, "transaction quota %d: must be greater than 0", n)
	}
	c.mu.Lock()
	c.quota = n
	wake := c.rxBlocked
	c.rxBlocked = false
	ep := c.ep
	c.mu.Unlock()
	if wake && ep != nil {
		ep.in.Signal() //nolint:errcheck // wakes our own receive loop
	}
	return nil
}

// Outstanding is the number of incoming packets indicated and not yet
// completed.
func (c *Channel) Outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outstanding
}

// uncount ends a packet's outstanding life (it may still wait for its
// completion to be written) and wakes whoever waits for that.
func (c *Channel) uncount(p *Packet) {
	c.mu.Lock()
	c.unrestartLocked(p)
	c.outstanding--
	idle, wake, ep := c.afterUncountLocked()
	c.mu.Unlock()
	c.wakeAfter(idle, wake, ep)
}

// release completes p's outstanding life and returns it to the pool.
func (c *Channel) release(p *Packet) {
	c.mu.Lock()
	c.unrestartLocked(p)
	p.state = pktFree
	c.inFree = append(c.inFree, p)
	c.outstanding--
	idle, wake, ep := c.afterUncountLocked()
	c.mu.Unlock()
	c.wakeAfter(idle, wake, ep)
}

// retire checks that p is outstanding, returns it to the pool and ends
// its outstanding life, all under one lock: the path of every packet
// completed without a completion. With fail the incoming queue stops.
func (c *Channel) retire(p *Packet, what string, fail bool) {
	c.mu.Lock()
	if p.state != pktIndicated {
		c.mu.Unlock()
		panic("channel: " + what + " of a packet that is not outstanding")
	}
	if fail {
		c.stopRxLocked(StatusInvalidParameter, "the driver failed a packet (Fail)")
	}
	c.unrestartLocked(p)
	p.state = pktFree
	c.inFree = append(c.inFree, p)
	c.outstanding--
	idle, wake, ep := c.afterUncountLocked()
	c.mu.Unlock()
	c.wakeAfter(idle, wake, ep)
}

// afterUncountLocked says, after outstanding went down, whether a waitIdle
// must hear of it (a Pause waits for all but the restartable packets) and
// whether the receive loop waits for a packet object or for the quota.
// Must hold mu.
func (c *Channel) afterUncountLocked() (idle, wake bool, ep *endpoint) {
	idle = c.busyLocked() == 0 && c.idleWaiters > 0
	wake = c.rxBlocked
	c.rxBlocked = false
	return idle, wake, c.ep
}

// wakeAfter wakes a waitIdle and the receive loop, as afterUncountLocked
// decided.
func (c *Channel) wakeAfter(idle, wake bool, ep *endpoint) {
	if idle {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
	if wake && ep != nil {
		ep.in.Signal() //nolint:errcheck // wakes our own receive loop
	}
}

// recycle returns a packet whose completion was written (or dropped) to
// the pool; it was uncounted already.
func (c *Channel) recycle(p *Packet) {
	c.mu.Lock()
	if p.state == pktCompleting {
		p.state = pktFree
		c.inFree = append(c.inFree, p)
	}
	wake := c.rxBlocked
	c.rxBlocked = false
	ep := c.ep
	c.mu.Unlock()
	if wake && ep != nil {
		ep.in.Signal() //nolint:errcheck // wakes our own receive loop
	}
}

// doWork runs one work item on the worker.
func (c *Channel) doWork(it workItem) {
	if it.p == nil {
		if fn := c.cfg.processComplete; fn != nil {
			fn(c, it.batchEnd)
		}
		return
	}
	p := it.p
	c.mu.Lock()
	p.state = pktIndicated
	c.mu.Unlock()
	var flags PacketFlags
	if len(p.ranges) > 0 {
		flags = PacketFlagExternalData
	}
	c.cfg.process(c, p, p.buf[:p.n], flags)
}

// A peer's signal flood: after floodWakeups wake-ups in a row with nothing
// to do, the receive goroutine waits floodPause before it sleeps on its
// event again. A peer that follows the signalling protocol signals only
// when it wrote into an empty ring or freed space this end waits for, so
// a run of empty wake-ups that long (a few races at most) is misbehaviour;
// the pause caps what a flood costs the host at floodWakeups wake-ups per
// floodPause and channel, and adds at most floodPause of latency after one.
const (
	floodWakeups = 64
	floodPause   = time.Millisecond
)

// rxLoop is the channel's receive goroutine while it is open: it reads the
// incoming ring in batches, indicates packets, routes completions to the
// outgoing packets that wait for them, and flushes the send queue when the
// peer signals that space freed up. It sleeps on the incoming event; the
// channel wakes it by signalling that event itself.
func (c *Channel) rxLoop(ep *endpoint) {
	defer close(ep.rxDone)
	idle := 0 // wake-ups in a row that found nothing to read or write
	for {
		c.mu.Lock()
		if c.rxExit {
			c.rxParked = true
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		run := c.rxWant && !c.rxFailed
		if !c.rxWant && !c.rxParked {
			c.rxParked = true
			c.cond.Broadcast()
		}
		c.mu.Unlock()
		done, sig := c.flush(ep)
		worked := done != nil || sig
		c.finishSent(ep, done, sig && !c.quiet())
		before := c.st.inPackets.Load()
		if run && c.readBatch(ep) {
			idle = 0
			continue
		}
		if worked || c.st.inPackets.Load() != before {
			idle = 0
		} else {
			c.st.emptyWakeups.Add(1)
			if idle++; idle >= floodWakeups {
				// A peer that signals without cause costs this
				// goroutine a wake-up each time: every floodWakeups
				// of them in a row, it waits floodPause first.
				idle = 0
				c.st.floodPauses.Add(1)
				time.Sleep(floodPause)
			}
		}
		// Asleep: a stop of the packets (StopIndications, Pause) may
		// count the loop as parked without waking it (rxSleeping).
		c.rxSleeping.Store(true)
		err := ep.in.Wait(context.Background())
		c.rxSleeping.Store(false)
		if err != nil {
			c.mu.Lock()
			exit := c.rxExit
			c.mu.Unlock()
			if exit {
				continue // Relinquish stopped the waits: exit at the top
			}
			// The event is closed: the connection is gone.
			ep.rxErr = err
			select {
			case c.lost <- struct{}{}:
			default:
			}
			c.mu.Lock()
			c.rxParked = true
			c.cond.Broadcast()
			for !c.rxExit {
				c.cond.Wait()
			}
			c.mu.Unlock()
			return
		}
	}
}

// testHookBeforeRead, if set, runs on the receive goroutine right before
// each read of a packet the loop means to indicate: a test puts a
// StopIndications, and a packet sent after it, exactly there.
var testHookBeforeRead atomic.Pointer[func(*Channel)]

// readBatch reads packets until the ring is empty, the loop must stop, or
// no packet object (or quota) is free. It reports whether the loop should
// go on without sleeping.
func (c *Channel) readBatch(ep *endpoint) (more bool) {
	r := ep.r
	r.DisableInterrupts()
	c.sendMu.Lock()
	c.txHold = true
	c.sendMu.Unlock()
	count := 0
	defer c.endBatch(ep)
	for {
		if !c.rxRun.Load() {
			return true
		}
		c.mu.Lock()
		var pk *Packet
		if len(c.inFree) == 0 {
			c.growPoolLocked()
		}
		if n := len(c.inFree); n > 0 && !c.rxFailed && (c.quota == 0 || c.outstanding < c.quota) {
			pk = c.inFree[n-1]
			c.inFree = c.inFree[:n-1]
			c.outstanding++
			pk.state = pktIndicated
		} else {
			c.rxBlocked = true
		}
		c.mu.Unlock()
		if pk == nil {
			// No room for a data packet; completions may still pass.
			c.commitRx(ep)
			err := r.Next(&ep.pkt)
			if err != nil {
				return c.batchDone(ep, err, count)
			}
			if !c.rxRun.Load() {
				r.Unread() // see below
				return true
			}
			if ep.pkt.Type != ring.TypeCompletion {
				r.Revert()
				return false // PacketComplete or the quota wakes us
			}
			c.st.read(ep.pkt.PayloadLen())
			c.mu.Lock()
			c.rxBlocked = false
			c.mu.Unlock()
			c.onCompletion(&ep.pkt)
			continue
		}
		if !c.rxRun.Load() {
			// Stopped while the packet object was taken: looked at
			// again right before the read, so that a packet sent
			// after StopIndications returned is not read.
			c.unpop(pk)
			return true
		}
		if h := testHookBeforeRead.Load(); h != nil {
			(*h)(c)
		}
		err := r.Next(&ep.pkt)
		if err != nil {
			c.unpop(pk)
			return c.batchDone(ep, err, count)
		}
		if !c.rxRun.Load() {
			// Stopped during the read: the packet may have been sent
			// after StopIndications returned, so it goes back to the
			// ring unindicated, to be read after Start.
			r.Unread()
			c.unpop(pk)
			return true
		}
		c.st.read(ep.pkt.PayloadLen())
		switch ep.pkt.Type {
		case ring.TypeCompletion:
			c.unpop(pk)
			c.onCompletion(&ep.pkt)
		case ring.TypeInBand, ring.TypeGPADirect:
			if !c.fill(pk, &ep.pkt, c.cfg.inPlace && !c.cfg.blocking) {
				c.unpop(pk)
				c.mu.Lock()
				c.stopRxLocked(StatusInvalidBufferSize, "a packet of %d bytes with %d external ranges passes the channel's limits", ep.pkt.PayloadLen(), len(ep.pkt.Ranges))
				c.mu.Unlock()
				return false
			}
			count++
			var flags PacketFlags
			if len(pk.ranges) > 0 {
				flags = PacketFlagExternalData
			}
			switch {
			case c.cfg.blocking:
				pk.state = pktDeferred
				c.work.push(workItem{p: pk})
			case pk.view != nil:
				c.cfg.process(c, pk, pk.view, flags)
				// Only this goroutine fills packets, so the packet
				// cannot be in use again yet even if it was completed.
				pk.view = nil
			default:
				c.cfg.process(c, pk, pk.buf[:pk.n], flags)
			}
		default:
			// Transfer-page packets need a receive buffer protocol this
			// layer does not implement: the queue stops, as for a
			// malformed packet.
			c.unpop(pk)
			c.mu.Lock()
			c.stopRxLocked(StatusInvalidParameter, "a packet of type %d, which this layer does not take", ep.pkt.Type)
			c.mu.Unlock()
			return false
		}
	}
}

// stopRxLocked stops the incoming queue for good (until the channel opens
// again) and keeps the first reason, for Stats: s says what kind of stop
// it was, and a %w in format keeps the cause. Must hold mu.
func (c *Channel) stopRxLocked(s Status, format string, args ...any) {
	c.rxFailed = true
	if c.rxStopErr == nil {
		e := statusErrorf(s, format, args...)
		c.rxStopErr, c.rxStopReason = e, e.detail.Error()
	}
}

// batchDone ends a batch at an empty ring (or a corrupt one): commit,
// ProcessingComplete, and unmask interrupts.
func (c *Channel) batchDone(ep *endpoint, err error, count int) bool {
	if !errors.Is(err, ring.ErrEmpty) {
		c.mu.Lock()
		c.stopRxLocked(StatusDeviceRemoved, "%w", err)
		c.mu.Unlock()
		return false
	}
	c.commitRx(ep)
	if count > 0 {
		if c.cfg.blocking {
			c.work.push(workItem{batchEnd: count})
		} else if fn := c.cfg.processComplete; fn != nil {
			fn(c, count)
		}
	}
	more, err := ep.r.EnableInterrupts()
	return err == nil && more
}

// unpop returns a packet taken for a read that did not use it.
func (c *Channel) unpop(p *Packet) {
	c.mu.Lock()
	p.state = pktFree
	c.inFree = append(c.inFree, p)
	c.outstanding--
	c.mu.Unlock()
}

// commitRx publishes the read index, signalling the peer if it waits for
// space.
func (c *Channel) commitRx(ep *endpoint) {
	if ep.r.Commit() {
		c.st.rxSignals++
		ep.out.Signal() //nolint:errcheck // a gone peer is noticed by the control plane
	}
}

// endBatch commits what the batch read and what completions it wrote,
// with at most one signal to the peer.
func (c *Channel) endBatch(ep *endpoint) {
	sig := ep.r.Commit()
	c.sendMu.Lock()
	c.txHold = false
	if ep.w.Commit() {
		sig = true
	}
	c.st.commit(sig)
	c.sendMu.Unlock()
	c.st.publishRx()
	if sig && !c.quiet() {
		ep.out.Signal() //nolint:errcheck // see commitRx
	}
}

// grow returns the packet's buffer, at least n bytes long, grown in powers
// of two up to the channel's maximum packet size.
func (p *Packet) grow(n int) []byte {
	if cap(p.buf) < n {
		size := 256
		for size < n {
			size *= 2
		}
		p.buf = make([]byte, max(min(size, p.c.cfg.maxPacketSize), n))
	}
	p.buf = p.buf[:cap(p.buf)]
	return p.buf[:n]
}

// fill copies a ring packet into pk, or with inPlace points pk.view at its
// payload in the ring when that is in one piece. It reports false for a
// packet the channel's limits refuse (a malformed packet).
func (c *Channel) fill(pk *Packet, rp *ring.Packet, inPlace bool) bool {
	n := rp.PayloadLen()
	if n > c.cfg.maxPacketSize {
		return false
	}
	pk.view = nil
	if a, b := rp.Segments(); inPlace && len(b) == 0 {
		pk.view, pk.n = a, 0
	} else {
		pk.n = rp.CopyPayload(pk.grow(n))
	}
	pk.txid = rp.TransactionID
	pk.want = rp.CompletionRequested()
	pk.ranges, pk.pfns = pk.ranges[:0], pk.pfns[:0]
	if rp.Type == ring.TypeGPADirect {
		pages := 0
		for _, r := range rp.Ranges {
			pages += len(r.PFNs)
		}
		if pages > c.cfg.maxExtChain {
			return false
		}
		for _, r := range rp.Ranges {
			pk.pfns = append(pk.pfns, r.PFNs...)
			pk.ranges = append(pk.ranges, gpa.Range{ByteCount: r.ByteCount, ByteOffset: r.ByteOffset})
		}
		off := 0
		for i := range pk.ranges {
			k := len(rp.Ranges[i].PFNs)
			pk.ranges[i].PFNs = pk.pfns[off : off+k : off+k]
			off += k
		}
	}
	clear(pk.ctx)
	return true
}
