package channel

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

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
		run := c.flow == flowLive && !c.rxFailed
		if c.flow != flowLive && !c.rxParked {
			c.rxParked = true
			c.cond.Broadcast()
		}
		c.mu.Unlock()
		if c.rxKick.Load() {
			// Heard at this look: a wake-up after it stops the next poll.
			c.rxKick.Store(false)
		}
		done, sig := c.flush(ep)
		// A wake-up that a writer waiting for space (WaitSendSpace)
		// asked for is work too: the peer signals it when it frees the
		// room, and a one-way stream's writer sees nothing else.
		worked := done != nil || sig || c.wakeSpaceWaiter()
		c.finishSent(ep, done, sig && !c.quiet())
		before := c.st.inPackets.Load()
		more := run && c.readBatch(ep)
		if !more && c.pl.masked {
			more = c.poll(ep)
		}
		c.tellRxStopped()
		if more {
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
		c.st.sleeps.Add(1)
		polling := c.pollMax.Load() != 0
		if polling {
			c.pl.sleep(time.Now())
		}
		err := ep.in.Wait(context.Background())
		c.rxSleeping.Store(false)
		if polling {
			c.pl.woke(time.Now(), time.Duration(c.pollMax.Load()))
		}
		if err == nil {
			ep.capturedWake()
		}
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
			c.rxParked, c.rxGone = true, true
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
		pk := c.takePacket()
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
			ep.capturedRead()
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
		ep.capturedRead()
		switch ep.pkt.Type {
		case ring.TypeCompletion:
			c.unpop(pk)
			c.onCompletion(&ep.pkt)
		case ring.TypeInBand, ring.TypeGPADirect, ring.TypeTransferPages:
			if ep.pkt.Type == ring.TypeTransferPages && !c.takeTransfer(pk, &ep.pkt) {
				// Dropped without a completion, as Linux drops a packet
				// naming a set that is not its own: the queue goes on.
				c.unpop(pk)
				continue
			}
			if !c.fill(pk, &ep.pkt, c.cfg.inPlace && !c.cfg.blocking) {
				c.unpop(pk)
				c.mu.Lock()
				c.stopRxLocked(StatusInvalidBufferSize, "a packet of %d bytes with %d external ranges passes the channel's limits", ep.pkt.PayloadLen(), len(ep.pkt.Ranges))
				c.mu.Unlock()
				return false
			}
			count++
			flags := pk.flags
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
			// The ring reader knows no other type; kept so that a new
			// one stops the queue rather than slipping through.
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
	c.rxFailedA.Store(true)
	if c.rxStopErr == nil {
		e := statusErrorf(s, format, args...)
		c.rxStopErr, c.rxStopReason = e, e.detail.Error()
	}
}

// tellRxStopped runs the incoming-stopped callback once the queue
// stopped for good, once per open. On the receive loop.
func (c *Channel) tellRxStopped() {
	fn := c.cfg.incomingStopped
	if fn == nil {
		return
	}
	c.mu.Lock()
	tell := c.rxFailed && !c.rxStopTold
	c.rxStopTold = c.rxStopTold || tell
	err := c.rxStopErr
	c.mu.Unlock()
	if tell {
		fn(c, err)
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
	if c.pl.arm(time.Duration(c.pollMax.Load()), c.st.rxPackets > 0) {
		// Left masked: the loop polls before it sleeps (poll), and
		// unmasks then, with the same re-check.
		c.pl.masked = true
		return false
	}
	more, err := ep.r.EnableInterrupts()
	return err == nil && more
}

// reserveMax is the most packet objects the receive loop takes at once.
// Between two processes every lock taken after reading the shared ring
// waits for the read to complete; one lock a packet was a wait a packet.
const reserveMax = 16

// takePacket returns a packet object for the next packet of the batch,
// counted outstanding and marked indicated, or nil when the pool, the
// quota or a failed queue allows none (the loop then waits for a
// completion: rxBlocked). It takes from the loop's reserve, which it
// refills under one lock, with one packet object for a batch's first
// packet and twice as many each time after, up to reserveMax; with a
// quota below the pool's size it takes one at a time, so that the quota
// is looked at for each packet.
func (c *Channel) takePacket() *Packet {
	if n := len(c.rxReserve); n > 0 {
		if c.rxFailedA.Load() {
			// A driver's Fail in this batch: the reserve goes back at
			// the batch's end, unread.
			return nil
		}
		pk := c.rxReserve[n-1]
		c.rxReserve = c.rxReserve[:n-1]
		pk.state = pktIndicated
		return pk
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inFree) == 0 {
		c.growPoolLocked()
	}
	// One for a batch's first packet, twice as many each time after:
	// a batch of one (a ping) takes and returns nothing more.
	want := max(c.rxReserveNext, 1)
	c.rxReserveNext = min(2*want, reserveMax)
	if c.quota != 0 && c.quota < c.cfg.maxPacketCount {
		want = min(1, c.quota-c.outstanding)
	}
	if c.rxFailed || want <= 0 || len(c.inFree) == 0 {
		c.rxBlocked = true
		return nil
	}
	k := min(want, len(c.inFree))
	free := len(c.inFree) - k
	c.rxReserve = append(c.rxReserve, c.inFree[free:]...)
	clear(c.inFree[free:])
	c.inFree = c.inFree[:free]
	c.outstanding += k
	for _, p := range c.rxReserve {
		p.state = pktReserved
	}
	pk := c.rxReserve[k-1]
	c.rxReserve = c.rxReserve[:k-1]
	pk.state = pktIndicated
	return pk
}

// unpop returns a packet taken for a read that did not use it to the
// reserve.
func (c *Channel) unpop(p *Packet) {
	p.state = pktReserved
	c.rxReserve = append(c.rxReserve, p)
}

// returnReserve puts the packet objects the loop took and did not use
// back in the pool, at the end of its batch, and wakes whoever waits for
// them (a Pause's waitIdle counts them outstanding until then).
func (c *Channel) returnReserve() {
	c.rxReserveNext = 1
	if len(c.rxReserve) == 0 {
		return
	}
	c.mu.Lock()
	for _, p := range c.rxReserve {
		p.state = pktFree
		c.inFree = append(c.inFree, p)
	}
	c.outstanding -= len(c.rxReserve)
	clear(c.rxReserve)
	c.rxReserve = c.rxReserve[:0]
	idle, wake, ep := c.afterUncountLocked()
	c.mu.Unlock()
	c.wakeAfter(idle, wake, ep)
}

// commitRx publishes the read index, signalling the peer if it waits for
// space.
func (c *Channel) commitRx(ep *endpoint) {
	if ep.r.Commit() {
		c.st.rxSignals++
		ep.signal()
	}
}

// endBatch commits what the batch read and what completions it wrote,
// with at most one signal to the peer.
func (c *Channel) endBatch(ep *endpoint) {
	c.returnReserve()
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
		ep.signal()
	}
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
	pk.flags = 0
	if rp.Type == ring.TypeTransferPages {
		pk.flags = PacketFlagExternalData | PacketFlagTransferPages
	} else {
		pk.xset = nil
	}
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
		pk.flags = PacketFlagExternalData
	}
	clear(pk.ctx)
	return true
}

// takeTransfer checks an incoming transfer-page packet against the
// client's transfer page sets and copies its ranges into pk. A packet it
// refuses (a set this end does not have, a range outside the buffer,
// overlapping ranges, more ranges or bytes than SetMaxExternalData
// allows, or any transfer-page packet on a server) is counted in
// Stats.TransferPagesDropped, its reason kept in
// Stats.TransferPagesDropReason, and dropped without a completion. On the
// receive goroutine.
func (c *Channel) takeTransfer(pk *Packet, rp *ring.Packet) bool {
	c.mu.Lock()
	sets := c.xsets
	var s *TransferPageSet
	var err error
	if c.server {
		err = fmt.Errorf("%w: a transfer-page packet sent to a server", ErrTransferPages)
	} else {
		s, err = checkTransfer(sets, rp.TransferPageSet, rp.TransferRanges, c.cfg.maxExtChain, uint64(c.cfg.maxExtSize), &pk.xr, &c.xscratch)
	}
	if err != nil {
		c.xferDropReason = err.Error()
		c.mu.Unlock()
		c.st.xferDropped.Add(1)
		return false
	}
	c.mu.Unlock()
	pk.xset = s
	return true
}
