package channel

import (
	"errors"
	"fmt"

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
	pktReserved         // in the receive loop's reserve (takePacket)
	pktChecked          // CompletePackets saw it, under mu: a second appearance fails
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
	rv      guestmem.RangeView // ExternalData's view of ranges
	ctx     []byte
	q       qitem
	// A transfer-page packet's set and its checked ranges (a copy).
	xset  *TransferPageSet
	xr    []TransferRange
	flags PacketFlags
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
		// Every caller holds mu: a panic the driver recovers must not
		// leave the channel locked.
		p.c.mu.Unlock()
		panic("channel: " + what + " of a packet that is not outstanding")
	}
}

// Complete completes the packet (KMCL VmbChannelPacketComplete). If the
// sender asked for a completion, one is sent with payload (which may be
// the packet's own payload); otherwise payload is ignored. The completion
// never fails for lack of ring space: it waits in the channel's send queue.
// Complete may be called from any goroutine. Completing a packet that is
// not outstanding (a second time) is a program's error and panics; the
// channel stays usable for a driver that recovers.
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
	if c.gate != gateOpen {
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
		err := ep.writeCompletion(p.txid, payload)
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
				ep.signal()
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
// The view is valid until the packet is completed; it is the packet's
// own, and a second call replaces it. A packet without
// external data, or whose data passes SetMaxExternalData or lies outside
// guest memory, gives an error matching StatusInvalidParameter; so does a
// transfer-page packet, whose ranges ReadTransferRange reads.
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
	// The packet's own view: one allocation less per request, and the
	// view lives as long as it may be used (until the completion).
	if err := ep.mem.SetRangeView(&p.rv, p.ranges, access); err != nil {
		return nil, fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	return &p.rv, nil
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
		c.wakeRx(ep)
	}
	return nil
}

// Outstanding is the number of incoming packets indicated and not yet
// completed. While the receive goroutine reads a batch, it also counts
// the packet objects that goroutine took for the batch's next packets
// (at most 16, and none with a transaction quota); between batches, and
// whenever the channel is paused, it is exact.
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

// CompletePackets completes each of ps as Complete(nil) would: those
// whose sender asked for no completion under one hold of the channel's
// lock, then a completion each for the others. A driver that answers a
// batch of packets at once (at ProcessingComplete) pays for the lock once
// rather than per packet: between two processes, a lock taken after
// reading the shared ring waits for the read to complete. Each packet
// must be outstanding on this channel and appear once; otherwise it
// panics, as Complete does, having completed none of them (and leaving the
// channel usable: a driver may recover).
func (c *Channel) CompletePackets(ps []*Packet) {
	c.mu.Lock()
	for i, p := range ps {
		if p == nil || p.c != c || p.state != pktIndicated {
			for _, q := range ps[:i] {
				q.state = pktIndicated
			}
			c.mu.Unlock()
			panic("channel: CompletePackets of a packet that is not outstanding on this channel")
		}
		p.state = pktChecked // a second appearance is caught above
	}
	for _, p := range ps {
		if p.want {
			p.state = pktIndicated // Complete's, below
			continue
		}
		p.state = pktFree
		c.unrestartLocked(p)
		c.inFree = append(c.inFree, p)
		c.outstanding--
	}
	idle, wake, ep := c.afterUncountLocked()
	c.mu.Unlock()
	c.wakeAfter(idle, wake, ep)
	for _, p := range ps {
		if p.want {
			p.Complete(nil)
		}
	}
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
		c.wakeRx(ep)
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
		c.wakeRx(ep)
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
	c.cfg.process(c, p, p.buf[:p.n], p.flags)
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
