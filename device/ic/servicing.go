package ic

import (
	"fmt"
	"math"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/savedstate"
)

// SaveChunkSize is the buffer Save hands SaveContinue.
const SaveChunkSize = 64 << 10

// stateVersion is the layout of a server's own state (the channel-device
// record's bytes, docs/ICS.md).
const stateVersion = 1

// Flags of the saved state.
const (
	savedNegotiated   = 1
	savedIncompatible = 2
)

// StopIndications is the first half of Pause: the server's packets stop
// at once. Pause (or Start) must follow.
func (c *core) StopIndications() { c.ch.Servicing().StopIndications() }

// Pause stops the server's packets and waits until every answer
// indicated so far was taken. A request on the wire stays outstanding: a
// save carries it, and the answer the guest writes meanwhile waits in the
// ring for the successor, which takes it as the answer to that request
// (once).
func (c *core) Pause() error { return c.ch.Pause() }

// Start lets packets flow again after Pause.
func (c *core) Start() error { return c.ch.Start() }

// StartHeld starts a restored server without its packets; Release lets
// them flow (channel.Channel.StartHeld).
func (c *core) StartHeld() error { return c.ch.Servicing().StartHeld() }

// Release makes a server started by StartHeld live.
func (c *core) Release() { c.ch.Servicing().Release() }

// Save saves the paused server: its channel, with the service's own
// state (negotiated versions, counters, the request outstanding, the
// service's extras) inside it, in whole-record chunks.
func (c *core) Save() ([][]byte, error) { return c.ch.SaveChunks(SaveChunkSize) }

// saveState is the channel's save-state callback.
func (c *core) saveState(*channel.Channel) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var e savedstate.Encoder
	var flags uint8
	if c.negotiated {
		flags |= savedNegotiated
	}
	if c.incompatible {
		flags |= savedIncompatible
	}
	e.U8(stateVersion).U8(flags)
	e.U16(c.fw.Major).U16(c.fw.Minor).U16(c.msg.Major).U16(c.msg.Minor)
	e.U64(c.st.Requests).U64(c.st.Answers).U64(c.st.Unanswered).U64(c.st.Unexpected)
	e.Bool(c.cur != nil)
	if p := c.cur; p != nil {
		e.U16(uint16(p.typ)).U64(p.seq).Bytes(p.payload)
	}
	var extra []byte
	if c.extra != nil {
		extra = c.extra()
	}
	e.Bytes(extra)
	return e.Body(), nil
}

// restoreState is the channel's restore-state callback: it checks the
// whole state before it changes the server.
func (c *core) restoreState(_ *channel.Channel, dev []byte) error {
	d := savedstate.NewDecoder(dev)
	if v := d.U8(); v != stateVersion && !d.Failed() {
		return fmt.Errorf("ic: saved state version %d, this build reads %d", v, stateVersion)
	}
	flags := d.U8()
	fw := Version{d.U16(), d.U16()}
	msg := Version{d.U16(), d.U16()}
	var st Status
	st.Requests, st.Answers, st.Unanswered, st.Unexpected = d.U64(), d.U64(), d.U64(), d.U64()
	var p *pending
	if d.Bool() {
		p = &pending{typ: MsgType(d.U16()), seq: d.U64(), payload: d.Bytes(MaxPipeData + PipeHeaderSize)}
	}
	extra := d.Bytes(MaxPipeData)
	if err := d.Err(); err != nil {
		return err
	}
	negotiated := flags&savedNegotiated != 0
	switch {
	case flags&^(savedNegotiated|savedIncompatible) != 0 || negotiated && flags&savedIncompatible != 0:
		return fmt.Errorf("ic: saved state flags %#x", flags)
	case negotiated && (!containsVersion(hostFrameworks, fw) || !containsVersion(c.info.hostMessages, msg)):
		return fmt.Errorf("ic: saved versions %v/%v that the host does not offer", fw, msg)
	case p != nil && p.typ != MsgNegotiate && p.typ != c.info.msg:
		return fmt.Errorf("ic: a saved %v request on the %s channel", p.typ, c.info.name)
	case p != nil && p.typ != MsgNegotiate && !negotiated:
		return fmt.Errorf("ic: a saved %v request before the negotiation", p.typ)
	case c.restoreExtra == nil && len(extra) != 0:
		// Dropping them would restore a server other than the one saved,
		// e.g. a heartbeat's state restored as another service's.
		return fmt.Errorf("ic: %d bytes of service state for %s, want none", len(extra), c.info.name)
	}
	if p != nil {
		if _, err := Parse(p.payload); err != nil {
			return fmt.Errorf("ic: the saved request: %w", err)
		}
	}
	if c.restoreExtra != nil {
		if err := c.restoreExtra(extra); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.negotiated, c.incompatible, c.fw, c.msg, c.st = negotiated, flags&savedIncompatible != 0, fw, msg, st
	if negotiated {
		close(c.ready)
	}
	if p != nil {
		<-c.token // the restored request holds it until answered
		c.gen++
		p.gen = c.gen
		c.arm(p)
		c.cur = p
	}
	return nil
}

// restorePacket brings back a request that was queued at the save (sent
// while the channel was paused): the successor sends it.
func (c *core) restorePacket(ch *channel.Channel, lib, dev []byte) error {
	if len(dev) != 0 {
		return fmt.Errorf("ic: %d bytes of VSP state for a packet, want none", len(dev))
	}
	op, err := ch.AllocatePacket()
	if err != nil {
		return err
	}
	if err := op.Restore(lib); err != nil {
		op.Free()
		return err
	}
	return nil // the default completion frees it once sent
}

// saturating keeps a counter from wrapping when restored counts are
// added to (a hostile state could start them near the top).
func saturating(v uint64) uint64 {
	if v == math.MaxUint64 {
		return v
	}
	return v + 1
}
