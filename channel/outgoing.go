package channel

import (
	"errors"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

// NoTimeout makes SendSynchronousRequest wait as long as it takes.
const NoTimeout time.Duration = -1

// Outgoing packet states, under sendMu.
const (
	outIdle uint8 = iota
	outQueued
	outInFlight // in the ring, waiting for the peer's completion
)

// CompletionFunc is KMCL's EvtVmbPacketCompletionRoutine. status is
// StatusSuccess, or StatusDeviceRemoved when the channel closed first.
// For a packet sent with SendWaitForCompletion, payload is the peer's
// completion, valid only during the call. It is read in place: it may be
// the incoming ring itself, which the peer can rewrite at any moment, so
// read each field once (copy, then judge the copy). Otherwise it is nil and the
// call means "placed in the ring". It runs on the goroutine that got the
// packet there (the sender's, or the receive goroutine's) and must not
// block.
type CompletionFunc func(p *OutPacket, status Status, payload []byte)

// OutPacket is an outgoing packet object (KMCL VMBPACKET): allocated once
// with AllocatePacket, reused for any number of sends (one at a time),
// freed with Free. Sending never allocates once the packet's buffers have
// grown to the largest payload it queued.
type OutPacket struct {
	// Context is the driver's per-packet value (KMCL packet context).
	Context any

	c          *Channel
	slot       uint32
	state      uint8
	completion CompletionFunc
	txid       uint64
	wait       bool
	buf        []byte // payload copy while queued
	n          int
	ranges     []gpa.Range
	pfns       []uint64
	q          qitem
	// A transfer-page send (SendTransferPages): the set and allocation
	// its ranges hold until the guest completes it, and the ranges.
	xset *TransferPageSet
	xseq uint64
	xr   []TransferRange

	// CheckStall's: the transaction it saw in flight, and since when
	// (under sendMu).
	diagTxid uint64
	diagSeen time.Time

	// SendSynchronousRequest
	done      chan struct{}
	timer     *time.Timer // the timeout's, made once: a timer a call cost three allocations
	resp      []byte
	respN     int
	status    Status
	abandoned bool
}

// AllocatePacket allocates an outgoing packet object (KMCL
// VmbPacketAllocate). It fails with StatusInsufficientResources when the
// channel has too many live packets.
func (c *Channel) AllocatePacket() (*OutPacket, error) {
	p := &OutPacket{}
	if err := c.InitializePacket(p); err != nil {
		return nil, err
	}
	return p, nil
}

// InitializePacket makes a zero OutPacket the caller allocated a packet
// object of c (KMCL VmbPacketInitialize).
func (c *Channel) InitializePacket(p *OutPacket) error {
	c.mu.Lock()
	freed := c.ph == phFreed
	c.mu.Unlock()
	if freed {
		return fail(StatusInvalidDeviceState, "packet of a channel after Cleanup")
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if p.c != nil {
		panic("channel: InitializePacket of a packet in use")
	}
	if c.outLive >= maxOutPackets {
		return fail(StatusInsufficientResources, "%d packets allocated", c.outLive)
	}
	var slot uint32
	if n := len(c.outFree); n > 0 {
		slot = c.outFree[n-1]
		c.outFree = c.outFree[:n-1]
	} else {
		slot = uint32(len(c.outSlots))
		c.outSlots = append(c.outSlots, nil)
	}
	c.outSlots[slot] = p
	c.outLive++
	*p = OutPacket{c: c, slot: slot, done: make(chan struct{}, 1)}
	p.q.out = p
	return nil
}

// Free releases the packet object (KMCL VmbPacketFree). The packet must be
// idle: not queued and not waiting for a completion. A packet without a
// completion routine frees itself when its send completes (see
// SetCompletion): Free is for one not sent, or with a routine of its own.
func (p *OutPacket) Free() {
	c := p.c
	if c == nil {
		panic("channel: Free of a freed packet (one without a completion routine frees itself when its send completes)")
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if p.state != outIdle {
		panic("channel: Free of a packet still being sent")
	}
	c.outSlots[p.slot] = nil
	c.outFree = append(c.outFree, p.slot)
	c.outLive--
	p.c = nil
}

// SetCompletion sets the completion routine (KMCL
// VmbPacketSetCompletionRoutine). The default routine, which nil restores,
// frees the packet once its send completed, as KMCL's does (the
// VmbPacketAllocate page): a driver that sends and forgets leaks no
// packet. A driver that reuses a packet sets a routine of its own and
// frees the packet itself.
func (p *OutPacket) SetCompletion(fn CompletionFunc) { p.completion = fn }

// completed runs the packet's completion routine, or the default one,
// which frees it. Not under sendMu.
func (p *OutPacket) completed(st Status, payload []byte) {
	if fn := p.completion; fn != nil {
		fn(p, st, payload)
		return
	}
	p.Free()
}

// Channel is the packet's channel.
func (p *OutPacket) Channel() *Channel { return p.c }

// Send sends payload as an in-band packet (KMCL VmbPacketSend). The payload
// is copied (into the ring, or into the packet while the ring is full or
// the channel is paused), so the caller may reuse it when Send returns.
// The peer sees it padded with zeros to a multiple of 8 bytes (VMBus
// counts a packet's length in 8-byte units), so a protocol whose messages
// are not carries their length itself. With SendWaitForCompletion the
// packet completes when the peer's completion arrives; otherwise when it
// is in the ring. Errors: StatusInvalidDeviceState if the channel is not
// open, StatusInvalidBufferSize if the packet can never fit the ring or
// the MTU.
func (p *OutPacket) Send(payload []byte, flags SendFlags) error {
	return p.send(payload, nil, flags, false)
}

// SendExternal sends payload with external data: a GPA-direct packet
// whose ranges name guest memory by page list (KMCL
// VmbPacketSendWithExternalPfns / ExternalMdl). SendWaitForCompletion is
// required: the peer uses the memory until it completes.
func (p *OutPacket) SendExternal(payload []byte, ext []gpa.Range, flags SendFlags) error {
	if len(ext) == 0 {
		return fail(StatusInvalidParameter, "SendExternal without ranges")
	}
	return p.send(payload, ext, flags, false)
}

// wireLen is the ring size of a packet without its footer: the length its
// descriptor describes, which the MTU bounds.
func wireLen(payload int, ext []gpa.Range) int {
	return ring.PacketLen(typeHeaderLen(ext), payload) - ring.FooterSize
}

// headerLen is the type header of p sent with external ranges ext: a
// transfer-page header for a SendTransferPages, else typeHeaderLen.
func (p *OutPacket) headerLen(ext []gpa.Range) int {
	if p.xset != nil {
		return (&ring.OutPacket{Type: ring.TypeTransferPages, TransferRanges: p.xr}).HeaderLen()
	}
	return typeHeaderLen(ext)
}

// typeHeaderLen is the type header of a packet with external ranges ext:
// none for an in-band packet, a GPA-direct header otherwise.
func typeHeaderLen(ext []gpa.Range) int {
	if len(ext) == 0 {
		return 0
	}
	return ring.GPADirectHeaderLen(ext)
}

func (p *OutPacket) send(payload []byte, ext []gpa.Range, flags SendFlags, noQueue bool) error {
	c := p.c
	if c == nil {
		panic("channel: send of a freed packet")
	}
	if len(ext) > 0 && flags&SendWaitForCompletion == 0 {
		return fail(StatusInvalidParameter, "external data needs SendWaitForCompletion")
	}
	hl := p.headerLen(ext)
	if wire := ring.PacketLen(hl, len(payload)) - ring.FooterSize; wire > MTU {
		return fail(StatusInvalidBufferSize, "packet of %d bytes passes the MTU", wire)
	}
	c.sendMu.Lock()
	if p.state != outIdle {
		c.sendMu.Unlock()
		panic("channel: send of a packet still being sent")
	}
	if err := c.refuseInSave("send"); err != nil {
		c.sendMu.Unlock()
		return err
	}
	ep := c.sendEP
	if ep == nil {
		return c.sendBeforeOpen(p, payload, ext, flags, noQueue)
	}
	c.txSeq++
	p.txid = uint64(c.txSeq)<<32 | uint64(p.slot)
	p.wait = flags&SendWaitForCompletion != 0
	if c.qHead == nil && c.gate != gateShut {
		err := c.write(ep, p, payload, ext)
		if err == nil {
			c.st.wrote(len(payload))
			var sig bool
			if !c.txHold {
				sig = ep.w.Commit()
				c.st.commit(sig)
			}
			if p.wait {
				p.state = outInFlight
			}
			c.sendMu.Unlock()
			if sig {
				ep.signal()
			}
			if !p.wait {
				p.completed(StatusSuccess, nil)
			}
			return nil
		}
		if !errors.Is(err, ring.ErrFull) {
			c.sendMu.Unlock()
			if errors.Is(err, ring.ErrTooLarge) {
				return fail(StatusInvalidBufferSize, "packet does not fit the ring")
			}
			return fail(StatusDeviceRemoved, "send: %w", err)
		}
	}
	if noQueue {
		c.sendMu.Unlock()
		return StatusBufferOverflow
	}
	if ep.w.Size() < ring.PacketLen(hl, len(payload)) {
		c.sendMu.Unlock()
		return fail(StatusInvalidBufferSize, "packet does not fit the ring")
	}
	// Queue a copy.
	if cap(p.buf) < len(payload) {
		p.buf = make([]byte, len(payload))
	}
	p.n = copy(p.buf[:cap(p.buf)], payload)
	p.ranges, p.pfns = copyRanges(p.ranges[:0], p.pfns[:0], ext)
	p.state = outQueued
	c.enqueue(&p.q)
	done, sig := c.flushLocked(ep)
	c.sendMu.Unlock()
	c.finishSent(ep, done, sig)
	return nil
}

// sendBeforeOpen queues a packet sent on an enabled channel that is not
// open (yet, or again): KMCL's EvtVmbChannelOpened page says packets can
// be queued before that callback, but not sent. The queue goes out once
// the channel opens (goLive); Disable fails it with StatusDeviceRemoved.
// A disabled channel, or a client channel that closed (it does not open
// again), refuses the send. Called with sendMu held; unlocks it.
func (c *Channel) sendBeforeOpen(p *OutPacket, payload []byte, ext []gpa.Range, flags SendFlags, noQueue bool) error {
	c.mu.Lock()
	waiting := c.ph.waiting() || c.ph.open()
	c.mu.Unlock()
	switch {
	case !waiting:
		c.sendMu.Unlock()
		return fail(StatusInvalidDeviceState, "send on a channel that is not open")
	case noQueue:
		c.sendMu.Unlock()
		return StatusBufferOverflow
	}
	c.txSeq++
	p.txid = uint64(c.txSeq)<<32 | uint64(p.slot)
	p.wait = flags&SendWaitForCompletion != 0
	if cap(p.buf) < len(payload) {
		p.buf = make([]byte, len(payload))
	}
	p.n = copy(p.buf[:cap(p.buf)], payload)
	p.ranges, p.pfns = copyRanges(p.ranges[:0], p.pfns[:0], ext)
	p.state = outQueued
	c.enqueue(&p.q)
	c.sendMu.Unlock()
	return nil
}

// noSlot is the packet slot in the transaction id of a TrySend packet: no
// outgoing packet has it, so a completion naming it (none was asked for)
// is ignored.
const noSlot = ^uint32(0)

// TrySend writes payload as an in-band packet (padded to a multiple of 8
// bytes, as Send's) without a packet object and without asking for a
// completion, if it fits in the ring now, nothing
// waits in the send queue (which keeps sends in order) and the channel is
// not paused (nor being saved); otherwise it sends
// nothing and returns StatusBufferOverflow, and the caller falls back to
// an OutPacket, which queues, or waits for room (WaitSendSpace). It saves
// the packet object's bookkeeping on the common path of a driver that
// answers packet for packet. Other errors: StatusInvalidDeviceState if
// the channel is not open, StatusInvalidBufferSize if the packet can
// never fit.
func (c *Channel) TrySend(payload []byte) error {
	return c.trySend("TrySend", 0, true, payload)
}

// TrySendParts is TrySend of a payload given in parts, written into the
// ring one after the other (a header and the caller's data, without
// joining them first), with transaction id txid: a pipe's packets carry
// 0 (DEVICES.md §1.2). No completion is asked for, so the id names no
// outgoing packet and a completion the peer sends anyway is ignored.
func (c *Channel) TrySendParts(txid uint64, parts ...[]byte) error {
	return c.trySend("TrySendParts", txid, false, parts...)
}

// TrySendBatch is TrySend of several payloads, in order, under one hold
// of the send lock and with one commit of the ring (at most one signal)
// for them all. Between two processes, each lock taken after a packet is
// written into shared memory waits for that write to reach the peer's
// cache; a burst sent with TrySendBatch waits once. It writes payloads
// while each fits and returns how many it wrote: all of them with a nil
// error, else the first n, and err says why it stopped there, with
// TrySend's errors (StatusBufferOverflow when the ring is full, a packet
// waits in the send queue or the server is paused: the caller sends the
// rest later or through OutPackets). It never queues and never blocks.
func (c *Channel) TrySendBatch(payloads [][]byte) (n int, err error) {
	if len(payloads) == 0 {
		return 0, nil
	}
	ep, err := c.trySendBegin("TrySendBatch")
	if err != nil {
		return 0, err
	}
	for _, p := range payloads {
		c.txSeq++
		txid := uint64(c.txSeq)<<32 | uint64(noSlot)
		if err = c.tryWrite(ep, txid, len(p), p); err != nil {
			break
		}
		n++
	}
	c.trySendEnd(ep, n > 0)
	return n, err
}

// trySend is TrySend and TrySendParts; seq numbers the packet from the
// send sequence instead of txid.
func (c *Channel) trySend(what string, txid uint64, seq bool, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	ep, err := c.trySendBegin(what)
	if err != nil {
		return err
	}
	if seq {
		c.txSeq++
		txid = uint64(c.txSeq)<<32 | uint64(noSlot)
	}
	if err := c.tryWrite(ep, txid, n, parts...); err != nil {
		c.sendMu.Unlock()
		return err
	}
	c.trySendEnd(ep, true)
	return nil
}

// trySendBegin takes sendMu for a TrySend and returns the endpoint to
// write to, or, with sendMu released, why nothing may be written now.
func (c *Channel) trySendBegin(what string) (*endpoint, error) {
	c.sendMu.Lock()
	if err := c.refuseInSave(what); err != nil {
		c.sendMu.Unlock()
		return nil, err
	}
	ep := c.sendEP
	if ep == nil {
		c.sendMu.Unlock()
		return nil, fail(StatusInvalidDeviceState, "send on a channel that is not open")
	}
	if c.qHead != nil || c.gate == gateShut {
		c.sendMu.Unlock()
		return nil, StatusBufferOverflow
	}
	return ep, nil
}

// tryWrite writes one TrySend packet of n payload bytes in parts into the
// ring, uncommitted, or says why it did not. Must hold sendMu.
func (c *Channel) tryWrite(ep *endpoint, txid uint64, n int, parts ...[]byte) error {
	if wireLen(n, nil) > MTU {
		return fail(StatusInvalidBufferSize, "packet of %d bytes passes the MTU", wireLen(n, nil))
	}
	if err := ep.writeInBandParts(txid, 0, parts); err != nil {
		switch {
		case errors.Is(err, ring.ErrFull):
			return StatusBufferOverflow
		case errors.Is(err, ring.ErrTooLarge):
			return fail(StatusInvalidBufferSize, "packet does not fit the ring")
		}
		return fail(StatusDeviceRemoved, "send: %w", err)
	}
	c.st.wrote(n)
	return nil
}

// trySendEnd commits what a TrySend wrote (unless the receive loop holds
// commits for its batch's end), releases sendMu and signals the peer if
// the ring says to.
func (c *Channel) trySendEnd(ep *endpoint, wrote bool) {
	var sig bool
	if wrote && !c.txHold {
		sig = ep.w.Commit()
		c.st.commit(sig)
	}
	c.sendMu.Unlock()
	if sig {
		ep.signal()
	}
}

// copyRanges deep-copies ranges into the given buffers.
func copyRanges(dst []gpa.Range, pfns []uint64, src []gpa.Range) ([]gpa.Range, []uint64) {
	for _, r := range src {
		pfns = append(pfns, r.PFNs...)
	}
	off := 0
	for _, r := range src {
		k := len(r.PFNs)
		dst = append(dst, gpa.Range{ByteCount: r.ByteCount, ByteOffset: r.ByteOffset, PFNs: pfns[off : off+k : off+k]})
		off += k
	}
	return dst, pfns
}

// write puts one outgoing packet in the ring, uncommitted. Must hold sendMu.
func (c *Channel) write(ep *endpoint, p *OutPacket, payload []byte, ext []gpa.Range) error {
	var fl uint16
	if p.wait {
		fl = ring.FlagCompletionRequested
	}
	switch {
	case p.xset != nil:
		c.scratch = ring.OutPacket{Type: ring.TypeTransferPages, Flags: fl, TransactionID: p.txid, TransferPageSet: p.xset.id, TransferRanges: p.xr}
	case len(ext) == 0:
		return ep.writeInBand(p.txid, fl, payload)
	default:
		c.scratch = ring.OutPacket{Type: ring.TypeGPADirect, Flags: fl, TransactionID: p.txid, Ranges: ext}
	}
	err := ep.writePacket(&c.scratch, payload)
	c.scratch.Ranges, c.scratch.TransferRanges = nil, nil
	return err
}
