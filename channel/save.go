package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

// SavePacketFunc is KMCL's EvtVmbChannelSavePacket: it saves the VSP's
// own state of an outgoing packet still in use into buf and returns the
// bytes written. The library calls it first with an empty buf; a VSP with
// state to save then fails (StatusBufferTooSmall is the usual error, but
// as in KMCL any error will do) with n = the bytes it needs, and is called
// again with a buffer of at least that size (an empty one if n is 0); an
// error from that second call fails the save. Returning nil with n = 0
// from the first call saves nothing for the packet.
type SavePacketFunc func(p *OutPacket, buf []byte) (n int, err error)

// RestorePacketFunc is KMCL's EvtVmbPacketRestore: for each saved packet,
// the VSP allocates a packet of c, calls its Restore with lib (the
// library's bytes), sets its completion routine and restores its own
// state from dev (what SavePacketFunc wrote).
type RestorePacketFunc func(c *Channel, lib []byte, dev []byte) error

// SetSavePacketCallbacks sets the packet save and restore callbacks (KMCL
// VmbServerChannelInitSetSaveRestorePacketCallbacks); server channels,
// while disabled. Without a restore callback a saved state that holds
// packets is refused by RestoreFromBuffer (StatusInvalidDeviceState):
// nothing would hear of their completions.
func (c *Channel) SetSavePacketCallbacks(save SavePacketFunc, restore RestorePacketFunc) error {
	return c.setter("save/restore packet callbacks", func() error {
		if err := c.serverOnly("save/restore packet callbacks"); err != nil {
			return err
		}
		c.cfg.savePacket, c.cfg.restorePacket = save, restore
		return nil
	})
}

// identity is the Begin identity of the channel's state: what a restore
// checks the state belongs to.
func (c *Channel) identity() []byte {
	typ, inst := c.cfg.ifType, c.cfg.ifInst
	if p := c.cfg.primary; p != nil {
		typ, inst = p.cfg.ifType, p.cfg.ifInst
	}
	b := make([]byte, identitySize)
	copy(b[0:], typ[:])
	copy(b[16:], inst[:])
	binary.LittleEndian.PutUint16(b[32:], c.cfg.subIndex)
	return b
}

// SaveBegin starts a save of a server channel (KMCL VmbChannelSaveBegin):
// it encodes the whole state now, so that any sequence of SaveContinue
// buffer sizes yields the same bytes, calling the save-packet callback for
// every outgoing packet still in use. The channel must be enabled and not
// running: Paused, or Enabled/Stopped before its first Start (Pause
// guarantees no incoming packet is still being processed). Errors:
// StatusInvalidParameter on a client channel, StatusInvalidDeviceState if
// the channel is running or a save is under way already (SaveEnd it
// first), or the callback's error.
//
// For servicing, pause the channels, then save the host's bus
// (host.Host.SaveGuests: that parks the control plane, so the guest
// cannot close the channel under the save), then save the channels.
//
// From SaveBegin to SaveEnd nothing may change what the state describes,
// or the state handed out would be stale (a transaction lost or done
// twice after the restore): Start, StartHeld, Disable, Cleanup, every
// send (Send, SendExternal, SendGpadl, TrySend, SendSynchronousRequest),
// MapGpadl and UnmapGpadl fail with StatusInvalidDeviceState meanwhile.
// A change no call can refuse (the guest closes the channel) makes the
// next SaveContinue fail instead.
func (c *Channel) SaveBegin() error {
	_, err := c.saveBegin()
	return err
}

// saveBegin is SaveBegin; it returns the save it opened, which saveLoop
// continues only while it is still the channel's open save.
func (c *Channel) saveBegin() (*savedstate.Saver, error) {
	if err := c.serverOnly("SaveBegin"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	switch {
	case c.saver != nil || c.saving:
		c.mu.Unlock()
		return nil, fail(StatusInvalidDeviceState, "SaveBegin: a save is under way (SaveEnd first)")
	case !c.ph.saveable() || c.flow == flowLive:
		st := c.ph.public()
		c.mu.Unlock()
		return nil, fail(StatusInvalidDeviceState, "SaveBegin: channel is %v; Pause it first", st)
	}
	c.saving, c.saveStale = true, false
	c.setSaveOpenLocked()
	c.mu.Unlock()
	recs, err := c.snapshot()
	var s *savedstate.Saver
	if err == nil {
		s, err = savedstate.NewSaver(savedstate.ScopeChannel, c.identity(), recs)
	}
	c.mu.Lock()
	c.saving = false
	if err == nil {
		c.saver = s
	}
	c.setSaveOpenLocked()
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// setSaveOpenLocked updates saveOpen after saving or saver changed. Must
// hold mu.
func (c *Channel) setSaveOpenLocked() { c.saveOpen.Store(c.saving || c.saver != nil) }

// refuseInSave fails what would change the channel while a save is open
// (KMCL: the state VmbChannelSaveBegin captured must still be the
// channel's when VmbChannelSaveEnd closes the save). A caller that
// needs the answer ordered with SaveBegin's snapshot holds mu or sendMu,
// which SaveBegin takes after it sets saveOpen.
func (c *Channel) refuseInSave(what string) error {
	if c.saveOpen.Load() {
		return fail(StatusInvalidDeviceState, "%s between SaveBegin and SaveEnd", what)
	}
	return nil
}

// staleSaveLocked marks an open save stale: the channel changed under
// it. Must hold mu.
func (c *Channel) staleSaveLocked() {
	if c.saving || c.saver != nil {
		c.saveStale = true
	}
}

// pktSnap is one outgoing packet as the snapshot found it.
type pktSnap struct {
	p   *OutPacket
	lib libPacket
}

// snapshot records the channel's logical state, calling the save-packet
// callback outside the locks. Every packet record is encoded into one
// arena, so a channel with many transactions in flight saves without an
// allocation per packet.
func (c *Channel) snapshot() ([]savedstate.Record, error) {
	info := &infoRecord{ServerFlags: uint32(c.cfg.serverFlags)}
	var mapped []uint32
	c.mu.Lock()
	if c.hc != nil {
		info.ChannelID, info.ConnectionID = c.hc.ChannelID, c.hc.ConnectionID
		params := c.hc.Params
		info.Open = &params
		for id := range c.mapped {
			mapped = append(mapped, id)
		}
	} else if c.offered != nil {
		info.ChannelID = c.offered.ChannelID()
		info.ConnectionID = protocol.ChannelConnectionID(info.ChannelID, protocol.MessageSINT, 0)
	}
	c.mu.Unlock()
	sort.Slice(mapped, func(i, j int) bool { return mapped[i] < mapped[j] })

	// The send queue in order (packets and completions), then the
	// completions held while paused (they join the queue's tail at
	// Start), then the packets in the ring waiting for a completion, by
	// slot, then the restartable packets still to do. Queued payloads are
	// copied: the packet keeps its buffer.
	var pkts []pktSnap
	var order []int // index into pkts, or ^index into comps
	var comps []completionRecord
	var restarts []*restartRecord
	c.sendMu.Lock()
	if info.Open == nil && c.qHead != nil {
		// Packets queued before the channel opened (sendBeforeOpen):
		// the saved state of a channel that is not open holds none.
		c.sendMu.Unlock()
		return nil, fail(StatusInvalidDeviceState, "SaveBegin: packets queued on a channel the guest has not opened")
	}
	// Nothing reaches the ring after this look at the queue, until Start
	// (paused.go): the queue recorded is the queue a successor sends.
	c.gate = gateShut
	info.TxSeq = c.txSeq
	for q := c.qHead; q != nil; q = q.next {
		if p := q.out; p != nil {
			l := libPacket{Slot: p.slot, State: savedQueued, TxID: p.txid, Wait: p.wait, Payload: bytes.Clone(p.buf[:p.n])}
			l.Ranges, _ = copyRanges(nil, nil, p.ranges)
			order = append(order, len(pkts))
			pkts = append(pkts, pktSnap{p: p, lib: l})
		} else {
			order = append(order, ^len(comps))
			comps = append(comps, completionRecord{TxID: q.in.txid, Payload: bytes.Clone(q.in.buf[:q.in.cn])})
		}
	}
	for _, in := range c.held {
		order = append(order, ^len(comps))
		comps = append(comps, completionRecord{TxID: in.txid, Payload: bytes.Clone(in.buf[:in.cn])})
	}
	// Under sendMu as well, which a restartable packet's completion takes
	// before it is written or held: each is to do or completed, once.
	c.mu.Lock()
	for _, p := range c.restarts {
		restarts = append(restarts, &restartRecord{TxID: p.txid, Want: p.want, Payload: bytes.Clone(p.buf[:p.n])})
	}
	restarts = append(restarts, c.redo...) // restored, not live yet
	c.mu.Unlock()
	for _, p := range c.outSlots {
		if p != nil && p != reservedSlot && p.c == c && p.state == outInFlight {
			order = append(order, len(pkts))
			pkts = append(pkts, pktSnap{p: p, lib: libPacket{Slot: p.slot, State: savedInFlight, TxID: p.txid, Wait: true}})
		}
	}
	xrecs := c.transferRecordsLocked()
	c.sendMu.Unlock()

	recs := make([]savedstate.Record, 2, 3+len(order))
	recs[1] = savedstate.Record{Kind: KindChannelMappings, Flags: savedstate.FlagCritical, Body: encodeMappings(mapped)}
	// The VSP's state goes before its packets': its restore callback runs
	// before theirs, so they may refer to it.
	if dev, err := c.deviceRecord(); err != nil {
		return nil, err
	} else if dev != nil {
		recs = append(recs, *dev)
	}
	// The sets before the packets that hold their ranges.
	for _, x := range xrecs {
		recs = append(recs, savedstate.Record{Kind: KindChannelTransferPages, Flags: savedstate.FlagCritical, Body: x.encode()})
	}
	arena := make([]byte, 0, len(pkts)*48)
	var scratch []byte
	for _, i := range order {
		if i < 0 {
			info.Completions++
			recs = append(recs, savedstate.Record{Kind: KindChannelCompletion, Flags: savedstate.FlagCritical, Body: comps[^i].encode()})
			continue
		}
		ps := &pkts[i]
		vsp, err := c.savePacketBytes(ps.p, &scratch)
		if err != nil {
			return nil, err
		}
		info.Packets++
		start := len(arena)
		arena = binary.LittleEndian.AppendUint32(arena, 0)
		arena = ps.lib.appendTo(arena)
		binary.LittleEndian.PutUint32(arena[start:], uint32(len(arena)-start-4))
		arena = binary.LittleEndian.AppendUint32(arena, uint32(len(vsp)))
		arena = append(arena, vsp...)
		recs = append(recs, savedstate.Record{Kind: KindChannelPacket, Flags: savedstate.FlagCritical, Body: arena[start:len(arena):len(arena)]})
	}
	for _, r := range restarts {
		recs = append(recs, savedstate.Record{Kind: KindChannelRestart, Flags: savedstate.FlagCritical, Body: r.encode()})
	}
	recs[0] = savedstate.Record{Kind: KindChannelInfo, Flags: savedstate.FlagCritical, Body: info.encode()}
	return recs, nil
}

// savePacketBytes runs the two-step save-packet protocol for one packet.
// The bytes it returns live in *scratch until the next call.
func (c *Channel) savePacketBytes(p *OutPacket, scratch *[]byte) ([]byte, error) {
	fn := c.cfg.savePacket
	if fn == nil {
		return nil, nil
	}
	// KMCL's EvtVmbChannelSavePacket page: the first call, with a zero
	// size, fails if there is state to save and gives the size needed;
	// after any failure of it (not only STATUS_BUFFER_TOO_SMALL) KMCL
	// calls again with a buffer at least that large.
	n, err := fn(p, nil)
	switch {
	case err == nil && n == 0:
		return nil, nil
	case err == nil:
		return nil, fail(StatusInvalidParameter, "save-packet callback wrote %d bytes into an empty buffer", n)
	case n < 0 || n > savedstate.MaxBody-64:
		return nil, fail(StatusInvalidBufferSize, "save-packet callback needs %d bytes", n)
	}
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	buf := (*scratch)[:n]
	clear(buf)
	m, err := fn(p, buf)
	if err != nil {
		// Not the callback's status as is: a STATUS_BUFFER_TOO_SMALL
		// from SaveBegin would read as SaveContinue's "a larger buffer".
		var st Status
		if errors.As(err, &st) {
			return nil, fail(StatusUnsuccessful, "save-packet callback, the packet of slot %d, with the %d bytes it asked for: %v", p.slot, n, err)
		}
		return nil, fail(StatusUnsuccessful, "save-packet callback, the packet of slot %d, with the %d bytes it asked for: %w", p.slot, n, err)
	}
	if m < 0 || m > n {
		return nil, fail(StatusInvalidParameter, "save-packet callback reports %d bytes of a %d-byte buffer", m, n)
	}
	return buf[:m], nil
}

// SaveContinue writes as many whole records of the state as fit into buf
// (KMCL VmbChannelSaveContinue), continuing where the previous call
// stopped, and returns the bytes written and the bytes the next call
// needs:
//   - nil (STATUS_SUCCESS): the rest of the state was written; required 0.
//   - an error matching StatusBufferOverflow: filled > 0, more remains,
//     required is the size of the next record.
//   - an error matching StatusBufferTooSmall: nothing was written,
//     required is the size of the next record.
//
// StatusInvalidDeviceState without SaveBegin, or when the channel changed
// since SaveBegin in a way no call could refuse (the guest closed it):
// then SaveEnd, and the save must start over once the channel is paused
// again. It is safe to call concurrently with SaveBegin and SaveEnd, which
// it never sees half done.
func (c *Channel) SaveContinue(buf []byte) (filled, required int, err error) {
	return c.saveContinue(nil, buf)
}

// saveContinue is SaveContinue of the open save, which must be want
// unless want is nil.
func (c *Channel) saveContinue(want *savedstate.Saver, buf []byte) (filled, required int, err error) {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	s, stale := c.saver, c.saveStale
	c.mu.Unlock()
	switch {
	case s == nil || (want != nil && s != want):
		return 0, 0, fail(StatusInvalidDeviceState, "SaveContinue without SaveBegin")
	case stale:
		return 0, 0, fail(StatusInvalidDeviceState, "SaveContinue: the channel changed since SaveBegin")
	}
	filled, required, p := s.Continue(buf)
	switch p {
	case savedstate.TooSmall:
		return 0, required, StatusBufferTooSmall
	case savedstate.Overflow:
		return filled, required, StatusBufferOverflow
	}
	return filled, 0, nil
}

// SaveEnd releases what SaveBegin allocated (KMCL VmbChannelSaveEnd),
// after a finished, failed or abandoned save alike, and lets the channel
// change again. Without a save under way it does nothing; a SaveBegin
// still under way on another goroutine is not ended.
func (c *Channel) SaveEnd() { c.saveEnd(nil) }

// saveEnd is SaveEnd of the open save if it is s (or any, with nil): a
// save loop ends its own save, not one begun after another goroutine
// ended it.
func (c *Channel) saveEnd(s *savedstate.Saver) {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	if s == nil || c.saver == s {
		c.saver = nil
	}
	c.setSaveOpenLocked()
	c.mu.Unlock()
}

// Save writes the channel's whole state to w: SaveBegin, SaveContinue
// until done, SaveEnd.
func (c *Channel) Save(w io.Writer) error {
	return c.saveLoop(64<<10, false, func(chunk []byte) error {
		_, err := w.Write(chunk)
		return err
	})
}

// SaveChunks saves the paused channel as whole-record chunks of at most
// size bytes each (larger only where a single record needs it): SaveBegin,
// SaveContinue, SaveEnd. RestoreChunks takes them back.
func (c *Channel) SaveChunks(size int) ([][]byte, error) {
	var out [][]byte
	err := c.saveLoop(size, true, func(chunk []byte) error {
		out = append(out, chunk)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveLoop runs a whole save, handing each filled chunk to emit. A chunk
// holds as many whole records as fit in size bytes (in more, from the
// first record that needs more on). The buffers are no larger than what
// is left of the state: a paused channel's state is mostly a few hundred
// bytes, and a servicing saves every channel in its blackout. With fresh
// every chunk is a buffer of its own, which emit may keep; else the chunk
// is valid only during the call.
func (c *Channel) saveLoop(size int, fresh bool, emit func(chunk []byte) error) error {
	s, err := c.saveBegin()
	if err != nil {
		return err
	}
	defer c.saveEnd(s)
	left := s.Len()
	size = max(size, 1)
	var buf []byte
	// Every call writes at least one record or asks once for a larger
	// buffer; a state holds a bounded number of records, so this ends.
	for {
		if want := max(min(size, left), 1); fresh || len(buf) < want {
			buf = make([]byte, want)
		}
		n, req, err := c.saveContinue(s, buf)
		left -= n
		if n > 0 {
			if err := emit(buf[:n:n]); err != nil {
				return err
			}
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, StatusBufferTooSmall):
			if req <= len(buf) {
				return fmt.Errorf("channel: save: buffer of %d bytes too small, %d required", len(buf), req)
			}
			size = req
		case !errors.Is(err, StatusBufferOverflow):
			return err
		}
	}
}

// RestoreChunks feeds a configured, disabled channel the chunks SaveChunks
// produced, in order, with RestoreFromBuffer, and checks that exactly the
// last one completes the state.
func (c *Channel) RestoreChunks(chunks [][]byte) error {
	if len(chunks) == 0 {
		return fmt.Errorf("channel: restore: no saved state: %w", StatusInvalidParameter)
	}
	for i, chunk := range chunks {
		err := c.RestoreFromBuffer(chunk)
		last := i == len(chunks)-1
		switch {
		case !last && errors.Is(err, StatusMoreProcessingRequired):
		case last && err == nil:
		case err == nil:
			return fmt.Errorf("channel: restore: state complete at chunk %d of %d: %w", i+1, len(chunks), StatusInvalidParameter)
		case last && errors.Is(err, StatusMoreProcessingRequired):
			return fmt.Errorf("channel: restore: saved state ends before its End record: %w", StatusInvalidParameter)
		default:
			return fmt.Errorf("channel: restore: chunk %d: %w", i+1, err)
		}
	}
	return nil
}
