package channel

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/savedstate"
)

// maxChannelState bounds one channel's saved state.
const maxChannelState = 256 << 20

// restoredState is a checked channel state, applied to the channel's
// packet table and waiting for Enable to re-attach it.
type restoredState struct {
	info    *infoRecord
	mapped  []uint32
	order   []restoredItem // the send queue in order
	flight  []*OutPacket   // packets in the ring waiting for completions
	claimed map[uint32]*OutPacket
	redo    []*restartRecord // restartable packets to indicate again
	// xsets are the transfer page sets, mapped again at re-attach; xslots
	// what each restored packet holds of them, by slot.
	xsets  map[uint16]*TransferPageSet
	xslots map[uint32]xhold
}

// xhold is one restored packet's hold on a transfer page set.
type xhold struct {
	set    *TransferPageSet
	seq    uint64
	ranges []TransferRange
}

// restoredItem is one send-queue entry: a packet or a completion.
type restoredItem struct {
	p    *OutPacket
	comp *completionRecord
}

// parsedChannel is a channel state decoded and checked, not yet applied.
type parsedChannel struct {
	info    *infoRecord
	mapped  []uint32
	packets []*packetRecord
	comps   []*completionRecord
	order   []int // send-queue order: index into packets (>= 0) or ^index into comps
	redo    []*restartRecord
	device  []byte // the VSP's state (KindChannelDevice), nil if none
	xsets   []*transferRecord
}

// RestoreFromBuffer restores the channel from a saved state (KMCL
// VmbChannelRestoreFromBuffer), one or more whole records per call, as
// SaveContinue wrote them. It returns an error matching
// StatusMoreProcessingRequired until the chunk holding the End record,
// then nil once the state is restored.
//
// Restore into a server channel that is configured (SetGuest,
// SetInterface, SetPrimary, SetServerFlags, the callbacks) and disabled;
// Enable then re-attaches it to the channel the guest still has (without
// FORCE_NEW_CHANNEL) and Start resumes packets. Everything is checked —
// the container, the channel's identity against its configuration, every
// record and the references between them, the host's restored view of the
// channel (ids, open parameters, GPADLs) — before anything changes: an
// error leaves the channel as it was, and the next call starts a new
// restore. Only a failing restore-packet callback (the VSP's own error,
// StatusInvalidParameter wrapping it) can stop a restore half-way: the
// saved slots are free again, so the next call can restore the same state,
// and the packets the VSP brought back until then are idle, theirs to
// free. The restore-state callback ran before them; a VSP whose
// restore-packet callback fails drops the state it took back.
//
// Once the state is restored, the configuration it was checked against is
// fixed: the setters refuse (StatusInvalidDeviceState) until Enable. An
// Enable while a restore wants more chunks is refused, and drops that
// restore.
func (c *Channel) RestoreFromBuffer(buf []byte) error {
	if err := c.serverOnly("RestoreFromBuffer"); err != nil {
		return err
	}
	c.mu.Lock()
	if c.ph == phFreed {
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "RestoreFromBuffer after Cleanup")
	}
	if !c.ph.disabled() {
		st := c.ph.public()
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "RestoreFromBuffer: channel is %v; restore into a disabled channel before Enable", st)
	}
	if c.restored != nil {
		// A second state would re-reserve the packets of the first: one
		// restore per Enable (KMCL restores a channel from one save).
		c.mu.Unlock()
		return fail(StatusInvalidDeviceState, "RestoreFromBuffer: the channel is restored already; Enable it")
	}
	if c.rest == nil {
		c.rest = savedstate.NewRestorer(savedstate.Limits{MaxBytes: maxChannelState})
	}
	r := c.rest
	c.mu.Unlock()
	done, err := r.Feed(buf)
	if err != nil {
		c.dropRestorer(r)
		return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	if !done {
		return StatusMoreProcessingRequired
	}
	c.dropRestorer(r)
	pc, err := c.parseState(r.Begin(), r.Records(), true)
	if err != nil {
		return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	if len(pc.packets) > 0 && c.cfg.restorePacket == nil {
		// KMCL's EvtVmbChannelRestorePacket page: the VSP brings each
		// packet back (VmbPacketAllocate, VmbPacketRestore) and sets its
		// completion routine. Without the callback no one would hear
		// of the packets' completions: refused, nothing changed.
		return fail(StatusInvalidDeviceState, "RestoreFromBuffer: the state holds %d packets and the channel has no restore-packet callback (SetSavePacketCallbacks)", len(pc.packets))
	}
	if pc.device != nil {
		if c.cfg.restoreState == nil {
			return fail(StatusInvalidDeviceState, "RestoreFromBuffer: the state holds the VSP's state and the channel has no restore-state callback (SetSaveStateCallbacks)")
		}
		// Before apply changes anything: a VSP that refuses its state
		// leaves the channel as it was.
		if err := c.cfg.restoreState(c, pc.device); err != nil {
			return fmt.Errorf("%w: restore-state callback: %w", StatusInvalidParameter, err)
		}
	}
	return c.apply(pc)
}

func (c *Channel) dropRestorer(r *savedstate.Restorer) {
	c.mu.Lock()
	if c.rest == r {
		c.rest = nil
	}
	c.mu.Unlock()
}

// Restore restores the channel from a whole saved state in one buffer.
func (c *Channel) Restore(state []byte) error {
	err := c.RestoreFromBuffer(state)
	if errors.Is(err, StatusMoreProcessingRequired) {
		c.mu.Lock()
		c.rest = nil
		c.mu.Unlock()
		return fail(StatusInvalidParameter, "saved state ends before its End record")
	}
	return err
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", savedstate.ErrInvalid, fmt.Sprintf(format, args...))
}

// parseState checks a complete state against itself, the channel's
// configuration and (withHost) the host's restored view of the channel.
func (c *Channel) parseState(b savedstate.Begin, recs []savedstate.Record, withHost bool) (*parsedChannel, error) {
	if b.Scope != savedstate.ScopeChannel {
		return nil, invalidf("a %v state, not a channel state", b.Scope)
	}
	if !bytes.Equal(b.Identity, c.identity()) {
		return nil, invalidf("the state is of another channel (identity %x, this channel's %x)", b.Identity, c.identity())
	}
	pc := &parsedChannel{}
	for i, r := range recs {
		var err error
		if len(pc.redo) > 0 && (r.Kind == KindChannelPacket || r.Kind == KindChannelCompletion) {
			return nil, invalidf("%s record at %d after a restart record", savedstate.KindName(r.Kind), i+1)
		}
		if r.Kind == KindChannelTransferPages && (i < 2 || len(pc.packets)+len(pc.comps)+len(pc.redo) > 0) {
			return nil, invalidf("transfer-page record at %d, must come after the mappings and before the packets", i+1)
		}
		switch r.Kind {
		case KindChannelInfo:
			if i != 0 {
				return nil, invalidf("info record at %d, must be first", i+1)
			}
			pc.info, err = decodeInfo(r.Body)
		case KindChannelMappings:
			if pc.mapped != nil || i != 1 {
				return nil, invalidf("mappings record at %d, must be second and once", i+1)
			}
			pc.mapped, err = decodeMappings(r.Body)
			if pc.mapped == nil && err == nil {
				pc.mapped = []uint32{}
			}
		case KindChannelDevice:
			if pc.device != nil || i != 2 {
				return nil, invalidf("device record at %d, must be third and once", i+1)
			}
			pc.device, err = decodeDevice(r.Body)
		case KindChannelTransferPages:
			var x *transferRecord
			if x, err = decodeTransfer(r.Body); err == nil {
				if len(pc.xsets) >= maxSavedSets {
					err = invalidf("more than %d transfer page sets", maxSavedSets)
				}
				pc.xsets = append(pc.xsets, x)
			}
		case KindChannelPacket:
			var p *packetRecord
			if p, err = decodePacket(r.Body); err == nil {
				if p.Lib.State == savedQueued {
					pc.order = append(pc.order, len(pc.packets))
				}
				pc.packets = append(pc.packets, p)
			}
		case KindChannelCompletion:
			var cr *completionRecord
			if cr, err = decodeCompletion(r.Body); err == nil {
				pc.order = append(pc.order, ^len(pc.comps))
				pc.comps = append(pc.comps, cr)
			}
		case KindChannelRestart:
			var rr *restartRecord
			if rr, err = decodeRestart(r.Body); err == nil {
				if len(rr.Payload) > c.cfg.maxPacketSize {
					err = invalidf("a restartable packet of %d bytes, the channel takes %d", len(rr.Payload), c.cfg.maxPacketSize)
				}
				pc.redo = append(pc.redo, rr)
			}
		default:
			if r.Critical() {
				return nil, invalidf("critical record of unknown kind %#x", uint16(r.Kind))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("record %d (%s): %w", i+1, savedstate.KindName(r.Kind), err)
		}
	}
	info := pc.info
	if info == nil || pc.mapped == nil {
		return nil, invalidf("info or mappings record missing")
	}
	if int(info.Packets) != len(pc.packets) || int(info.Completions) != len(pc.comps) {
		return nil, invalidf("info counts %d packets and %d completions, the state holds %d and %d", info.Packets, info.Completions, len(pc.packets), len(pc.comps))
	}
	// FORCE_NEW_CHANNEL says what to do after this restore, so it may
	// differ; the other flags shape the offer the guest has.
	if info.ServerFlags&^uint32(ServerForceNewChannel) != uint32(c.cfg.serverFlags&^ServerForceNewChannel) {
		return nil, invalidf("saved with server flags %#x, the channel has %#x", info.ServerFlags, uint32(c.cfg.serverFlags))
	}
	if info.Open == nil && (len(pc.packets) > 0 || len(pc.comps) > 0 || len(pc.redo) > 0 || len(pc.mapped) > 0) {
		return nil, invalidf("packets or mappings on a channel that was not open")
	}
	if info.Open != nil && info.Open.ChannelID != info.ChannelID {
		return nil, invalidf("open parameters of channel %d on channel %d", info.Open.ChannelID, info.ChannelID)
	}
	if len(pc.comps)+len(pc.redo) > c.cfg.maxPacketCount {
		return nil, invalidf("%d queued completions and %d restartable packets, the channel holds %d incoming packets", len(pc.comps), len(pc.redo), c.cfg.maxPacketCount)
	}
	// Packets: queued ones in queue order, then in-flight ones by slot.
	slots := make(map[uint32]bool, len(pc.packets))
	inFlight := false
	var lastSlot uint32
	for _, p := range pc.packets {
		l := p.Lib
		if slots[l.Slot] {
			return nil, invalidf("two packets in slot %d", l.Slot)
		}
		slots[l.Slot] = true
		if l.TxID>>32 > uint64(info.TxSeq) {
			return nil, invalidf("transaction id %#x is newer than the allocator's %d", l.TxID, info.TxSeq)
		}
		if l.State == savedInFlight {
			if inFlight && l.Slot <= lastSlot {
				return nil, invalidf("in-flight packets out of slot order")
			}
			inFlight, lastSlot = true, l.Slot
		} else if inFlight {
			return nil, invalidf("queued packet after in-flight ones")
		}
	}
	if len(pc.packets) > maxOutPackets {
		return nil, invalidf("%d packets", len(pc.packets))
	}
	if err := checkTransferRefs(pc); err != nil {
		return nil, err
	}
	if withHost {
		if err := c.checkHost(pc); err != nil {
			return nil, err
		}
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	for s := range slots {
		if int(s) < len(c.outSlots) && c.outSlots[s] != nil {
			return nil, invalidf("packet slot %d is in use: allocate packets after the restore", s)
		}
	}
	if c.outLive+len(pc.packets) > maxOutPackets {
		return nil, invalidf("too many packets")
	}
	return pc, nil
}

// checkHost checks the state against what the host restored for this
// channel: the same ids, open parameters and mapped GPADLs.
func (c *Channel) checkHost(pc *parsedChannel) error {
	g := c.cfg.guest
	if g == nil {
		return invalidf("the channel names no guest (SetGuest before restoring)")
	}
	rc, ok := g.Restored(c.dev.Offer())
	if !ok {
		if c.cfg.serverFlags&ServerForceNewChannel != 0 {
			return nil // offered anew at Enable
		}
		return invalidf("the guest's restored bus state holds no channel of this identity waiting for its server")
	}
	info := pc.info
	if rc.ChannelID != info.ChannelID || rc.ConnectionID != info.ConnectionID {
		return invalidf("saved as channel %d (connection %#x), the bus has it as channel %d (connection %#x)", info.ChannelID, info.ConnectionID, rc.ChannelID, rc.ConnectionID)
	}
	if (info.Open != nil) != rc.Open || (rc.Open && *info.Open != rc.Params) {
		return invalidf("open parameters differ from the bus state's")
	}
	byID := make(map[uint32]host.RestoredGpadl, len(rc.Gpadls))
	for _, gp := range rc.Gpadls {
		byID[gp.ID] = gp
	}
	want := 0
	for _, gp := range rc.Gpadls {
		if gp.Mapped {
			want++
		}
	}
	for _, id := range pc.mapped {
		if gp, ok := byID[id]; !ok || !gp.Mapped {
			return invalidf("GPADL %#x saved as mapped is not a mapped GPADL of the channel in the bus state", id)
		}
	}
	if want != len(pc.mapped) {
		return invalidf("the bus state has %d mapped GPADLs on the channel, the channel state %d", want, len(pc.mapped))
	}
	return nil
}

// apply installs a checked state: packet slots are reserved, the
// restore-packet callback brings each packet back, and the result waits
// for Enable.
func (c *Channel) apply(pc *parsedChannel) error {
	st := &restoredState{info: pc.info, mapped: pc.mapped, claimed: make(map[uint32]*OutPacket), redo: pc.redo}
	if len(pc.xsets) > 0 {
		st.xsets, st.xslots = make(map[uint16]*TransferPageSet), make(map[uint32]xhold)
		for _, x := range pc.xsets {
			set := restoredSet(c, x)
			st.xsets[x.ID] = set
			for _, p := range x.Packets {
				st.xslots[p.Slot] = xhold{set: set, seq: p.Seq, ranges: p.Ranges}
			}
		}
	}
	c.sendMu.Lock()
	for _, p := range pc.packets {
		s := p.Lib.Slot
		for int(s) >= len(c.outSlots) {
			c.outFree = append(c.outFree, uint32(len(c.outSlots)))
			c.outSlots = append(c.outSlots, nil)
		}
		c.outSlots[s] = reservedSlot
		c.removeFree(s)
	}
	c.restoring = st
	c.sendMu.Unlock()

	var err error
	for _, p := range pc.packets {
		if err = c.cfg.restorePacket(c, p.lib, p.VSP); err != nil {
			err = fmt.Errorf("%w: restore-packet callback, the packet of slot %d: %w", StatusInvalidParameter, p.Lib.Slot, err)
		}
		if err == nil && st.claimed[p.Lib.Slot] == nil {
			err = fail(StatusInvalidParameter, "restore-packet callback did not restore the packet of slot %d", p.Lib.Slot)
		}
		if err != nil {
			break
		}
	}
	c.sendMu.Lock()
	c.restoring = nil
	if err != nil {
		c.undoApplyLocked(pc, st)
		c.sendMu.Unlock()
		return err
	}
	for _, i := range pc.order {
		if i >= 0 {
			st.order = append(st.order, restoredItem{p: st.claimed[pc.packets[i].Lib.Slot]})
		} else {
			st.order = append(st.order, restoredItem{comp: pc.comps[^i]})
		}
	}
	for _, p := range pc.packets {
		if p.Lib.State == savedInFlight {
			st.flight = append(st.flight, st.claimed[p.Lib.Slot])
		}
	}
	c.txSeq = max(c.txSeq, pc.info.TxSeq)
	c.sendMu.Unlock()
	c.mu.Lock()
	c.restored = st
	c.mu.Unlock()
	return nil
}

// undoApplyLocked takes back what apply did before a restore-packet
// callback failed: every saved slot is free again, so that the same state
// (or another) can be restored next, and each packet the VSP already
// brought back is idle again in a slot the state does not name. Those
// packets stay the VSP's, which allocated them and frees them. Must hold
// sendMu.
func (c *Channel) undoApplyLocked(pc *parsedChannel, st *restoredState) {
	saved := make(map[uint32]bool, len(pc.packets))
	var restored []*OutPacket
	for _, p := range pc.packets {
		s := p.Lib.Slot
		saved[s] = true
		if op := st.claimed[s]; op != nil {
			restored = append(restored, op)
		}
		c.outSlots[s] = nil
		c.outFree = append(c.outFree, s)
	}
	for _, op := range restored {
		s := uint32(len(c.outSlots))
		for i, f := range c.outFree {
			if !saved[f] {
				s = f
				c.outFree = append(c.outFree[:i], c.outFree[i+1:]...)
				break
			}
		}
		if s == uint32(len(c.outSlots)) {
			c.outSlots = append(c.outSlots, nil)
		}
		c.outSlots[s] = op
		op.slot, op.txid, op.wait, op.n, op.state = s, 0, false, 0, outIdle
		op.ranges, op.pfns = op.ranges[:0], op.pfns[:0]
		op.xset, op.xseq, op.xr = nil, 0, op.xr[:0]
	}
}

// reservedSlot holds a slot for a packet being restored.
var reservedSlot = &OutPacket{}

// removeFree takes slot s off the free list. Must hold sendMu.
func (c *Channel) removeFree(s uint32) {
	for i, f := range c.outFree {
		if f == s {
			c.outFree = append(c.outFree[:i], c.outFree[i+1:]...)
			return
		}
	}
}

// Restore brings a packet back from the library's bytes of a saved state
// (KMCL VmbPacketRestore): called from the restore-packet callback on a
// packet freshly allocated from the channel being restored, with the lib
// bytes the callback received. The packet gets its saved slot and
// transaction id, and its queued payload or its place among the
// transactions awaiting a completion; the completion routine and Context
// are the VSP's to set.
func (p *OutPacket) Restore(lib []byte) error {
	c := p.c
	if c == nil {
		return fail(StatusInvalidParameter, "Restore of a freed packet")
	}
	l, err := decodeLib(lib)
	if err != nil {
		return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	st := c.restoring
	switch {
	case st == nil:
		return fail(StatusInvalidDeviceState, "Restore outside a restore-packet callback")
	case p.state != outIdle:
		return fail(StatusInvalidParameter, "Restore of a packet in use")
	case int(l.Slot) >= len(c.outSlots) || c.outSlots[l.Slot] != reservedSlot || st.claimed[l.Slot] != nil:
		return fail(StatusInvalidParameter, "Restore: slot %d is not awaiting a packet", l.Slot)
	}
	old := p.slot
	c.outSlots[old] = nil
	c.outFree = append(c.outFree, old)
	c.outSlots[l.Slot] = p
	p.slot, p.txid, p.wait = l.Slot, l.TxID, l.Wait
	if cap(p.buf) < len(l.Payload) {
		p.buf = make([]byte, len(l.Payload))
	}
	p.n = copy(p.buf[:cap(p.buf)], l.Payload)
	p.ranges, p.pfns = copyRanges(p.ranges[:0], p.pfns[:0], l.Ranges)
	p.xset, p.xr = nil, p.xr[:0]
	if x, ok := st.xslots[l.Slot]; ok {
		p.xset, p.xseq, p.xr = x.set, x.seq, append(p.xr, x.ranges...)
	}
	if l.State == savedQueued {
		p.state = outQueued
	} else {
		p.state = outInFlight
	}
	st.claimed[l.Slot] = p
	return nil
}

// takeRestored hands Enable the restored state, once.
func (c *Channel) takeRestored() *restoredState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.restored
	c.restored = nil
	return st
}

// failRestored completes every restored packet with StatusDeviceRemoved:
// the channel they belonged to is gone (abandoned or closed meanwhile).
func (c *Channel) failRestored(st *restoredState) {
	var failed []*OutPacket
	c.sendMu.Lock()
	for _, it := range st.order {
		if it.p != nil {
			it.p.state = outIdle
			failed = append(failed, it.p)
		}
	}
	for _, p := range st.flight {
		p.state = outIdle
		failed = append(failed, p)
	}
	for _, p := range failed {
		p.releaseTransfer() // the sets went with the channel
	}
	c.sendMu.Unlock()
	for _, p := range failed {
		p.completed(StatusDeviceRemoved, nil)
	}
}

// reattach continues the open channel hc with the restored state, on the
// worker: rings and events as they are (the ring indices are re-read and
// checked by the endpoints), GPADL mappings to rebuild, the send queue and
// the transactions in flight as saved. The signals that were lost with
// the old process are given again at Start (maybeActivate), not here: a
// guest woken now would only spend the CPU that the restore of the other
// channels needs, and could not be answered before Start anyway.
func (c *Channel) reattach(hc *host.Channel, st *restoredState) error {
	ep, err := c.openEndpoint(hc.In, hc.Out, hc.FromGuest, hc.ToGuest, hc.Memory, hc.Gpadls, tapOf(hc.Capture, hc.GuestID, hc.ChannelID))
	if err != nil {
		return fail(StatusInvalidDeviceState, "re-attach: %w", err)
	}
	// The transfer page sets' buffers are mapped again here, not by the
	// VSP: restored packets name them (TransferPageSet finds them).
	for _, s := range st.xsets {
		v, err := hc.Gpadls.Remap(s.gpadl, AccessReadWrite)
		if err != nil {
			return fail(StatusInvalidDeviceState, "re-attach: transfer page set %#x: %w", s.id, err)
		}
		if uint64(v.Len()) != s.size {
			return fail(StatusInvalidDeviceState, "re-attach: transfer page set %#x of %d bytes, its GPADL has %d", s.id, s.size, v.Len())
		}
		s.view = v
	}
	c.mu.Lock()
	c.hc = hc
	c.mapped = make(map[uint32]bool, len(st.mapped))
	c.remap = make(map[uint32]bool, len(st.mapped))
	for _, id := range st.mapped {
		c.mapped[id], c.remap[id] = true, true
	}
	for _, s := range st.xsets {
		delete(c.remap, s.gpadl)
	}
	c.xsets = st.xsets
	c.redo = st.redo // indicated when the channel goes live
	c.mu.Unlock()
	c.sendMu.Lock()
	for _, it := range st.order {
		if it.p != nil {
			c.enqueue(&it.p.q)
			continue
		}
		c.mu.Lock()
		if len(c.inFree) == 0 {
			c.growPoolLocked()
		}
		n := len(c.inFree)
		if n == 0 {
			// parseState bounded completions by the pool's maximum, and
			// the setters refuse once a state is restored: not reached.
			c.mu.Unlock()
			c.sendMu.Unlock()
			return fail(StatusInsufficientResources, "re-attach: no incoming packet for a restored completion")
		}
		in := c.inFree[n-1]
		c.inFree = c.inFree[:n-1]
		in.state = pktCompleting
		c.mu.Unlock()
		in.txid, in.want = it.comp.TxID, true
		if cap(in.buf) < len(it.comp.Payload) {
			in.buf = make([]byte, len(it.comp.Payload))
		}
		in.cn = copy(in.buf[:cap(in.buf)], it.comp.Payload)
		c.enqueue(&in.q)
	}
	done, _ := c.flushLocked(ep) // what it wrote makes the guest owed a signal
	c.sendMu.Unlock()
	c.goLive(ep)
	c.finishSent(ep, done, false)
	return nil
}

// owed reports whether the guest is owed a signal that the old process
// may have lost: it reads the host→guest ring with interrupts unmasked
// and data waiting, or it writes the guest→host ring and the space it
// asked for (pending send size) is there.
func owed(in, out []byte) bool {
	if o, err := ring.Inspect(out); err == nil && o.InterruptMask == 0 && o.WriteIndex != o.ReadIndex {
		return true
	}
	i, err := ring.Inspect(in)
	return err == nil && i.PendingSendMet()
}

// checkTransferRefs checks the transfer-page records against the rest of
// the state: one record per set id, each buffer a mapped GPADL, and each
// packet holding ranges a packet of the state that waits for its
// completion.
func checkTransferRefs(pc *parsedChannel) error {
	if len(pc.xsets) == 0 {
		return nil
	}
	bySlot := make(map[uint32]*libPacket, len(pc.packets))
	for _, p := range pc.packets {
		bySlot[p.Lib.Slot] = p.Lib
	}
	ids := make(map[uint16]bool, len(pc.xsets))
	held := make(map[uint32]bool)
	for _, x := range pc.xsets {
		if ids[x.ID] {
			return invalidf("transfer page set %#x twice", x.ID)
		}
		ids[x.ID] = true
		mapped := false
		for _, id := range pc.mapped {
			mapped = mapped || id == x.Gpadl
		}
		if !mapped {
			return invalidf("transfer page set %#x on GPADL %#x, which is not mapped", x.ID, x.Gpadl)
		}
		for _, p := range x.Packets {
			l := bySlot[p.Slot]
			if l == nil || !l.Wait || len(l.Ranges) > 0 || held[p.Slot] {
				return invalidf("transfer page set %#x names slot %d, not a packet waiting for its completion", x.ID, p.Slot)
			}
			held[p.Slot] = true
		}
	}
	return nil
}
