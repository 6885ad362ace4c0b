package channel

import (
	"context"
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
)

// CreateGpadl shares guest memory with the server as a GPADL of this
// client channel and returns its id once the server acknowledged it (KMCL
// VmbChannelCreateGpadlFromBuffer / …FromMdl: here, from GPA ranges).
// Allowed from the Opened callback until the Closed callback returns.
//
// GpadlReadOnly: the VMBus wire has no read-only bit, so the server cannot
// learn it from the GPADL itself. The client records it
// (GpadlIsReadOnly) and the VSP protocol tells the server, whose
// MarkGpadlReadOnly then makes every writable MapGpadl fail.
func (c *Channel) CreateGpadl(ctx context.Context, ranges []gpa.Range, flags GpadlFlags) (uint32, error) {
	if err := c.clientOnly("CreateGpadl"); err != nil {
		return 0, err
	}
	c.mu.Lock()
	gch := c.gch
	c.mu.Unlock()
	if gch == nil {
		return 0, fail(StatusInvalidDeviceState, "CreateGpadl on a channel that is not open")
	}
	id, err := c.cfg.client.CreateGpadl(ctx, gch.Offer.ChannelID, ranges)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", StatusUnsuccessful, err)
	}
	own, _ := copyRanges(nil, nil, ranges)
	c.mu.Lock()
	c.gpadls[id] = clientGpadl{ranges: own, readOnly: flags&GpadlReadOnly != 0}
	c.mu.Unlock()
	return id, nil
}

// GpadlIsReadOnly reports whether this client created GPADL id with
// GpadlReadOnly.
func (c *Channel) GpadlIsReadOnly(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gpadls[id].readOnly
}

// DeleteGpadl tears a GPADL of this client channel down (KMCL
// VmbChannelDeleteGpadl). It blocks while the server has it mapped. On a
// channel the host rescinded, the GPADL is only forgotten: the host drops
// a rescinded channel's GPADLs itself.
func (c *Channel) DeleteGpadl(ctx context.Context, id uint32) error {
	if err := c.clientOnly("DeleteGpadl"); err != nil {
		return err
	}
	c.mu.Lock()
	_, ok := c.gpadls[id]
	gch := c.gch
	c.mu.Unlock()
	if !ok {
		return fail(StatusInvalidParameter, "no GPADL %#x on this channel", id)
	}
	if gch != nil && !isRescinded(gch) {
		if err := c.cfg.client.TeardownGpadl(ctx, gch.Offer.ChannelID, id); err != nil {
			return fmt.Errorf("%w: %w", StatusUnsuccessful, err)
		}
	}
	c.mu.Lock()
	delete(c.gpadls, id)
	c.mu.Unlock()
	return nil
}

func isRescinded(gch *guest.Channel) bool {
	select {
	case <-gch.Rescinded():
		return true
	default:
		return false
	}
}

// SendGpadl sends payload with external data that names length bytes at
// offset of GPADL id of this client channel (KMCL send by GPADL, as a
// GPA-direct packet). SendWaitForCompletion is required.
func (p *OutPacket) SendGpadl(payload []byte, id uint32, offset, length uint32, flags SendFlags) error {
	c := p.c
	c.mu.Lock()
	g, ok := c.gpadls[id]
	c.mu.Unlock()
	if !ok {
		return fail(StatusInvalidParameter, "no GPADL %#x on this channel", id)
	}
	ranges, pfns, err := subRanges(p.ranges[:0], p.pfns[:0], g.ranges, offset, length)
	if err != nil {
		return err
	}
	p.ranges, p.pfns = ranges, pfns
	return p.send(payload, ranges, flags, false)
}

// subRanges cuts bytes [off, off+n) of the logical sequence ranges
// describe into new ranges, appended to dst and pfns.
func subRanges(dst []gpa.Range, pfns []uint64, ranges []gpa.Range, off, n uint32) ([]gpa.Range, []uint64, error) {
	if n == 0 {
		return nil, nil, fail(StatusInvalidParameter, "empty GPADL range")
	}
	start, end := uint64(off), uint64(off)+uint64(n)
	var pos uint64
	for _, r := range ranges {
		rs, re := pos, pos+uint64(r.ByteCount)
		pos = re
		if re <= start || rs >= end {
			continue
		}
		s, e := max(start, rs)-rs, min(end, re)-rs // within r
		abs := uint64(r.ByteOffset) + s
		first := abs / gpa.PageSize
		last := (uint64(r.ByteOffset) + e + gpa.PageSize - 1) / gpa.PageSize
		k := len(pfns)
		pfns = append(pfns, r.PFNs[first:last]...)
		dst = append(dst, gpa.Range{ByteCount: uint32(e - s), ByteOffset: uint32(abs % gpa.PageSize), PFNs: pfns[k:len(pfns):len(pfns)]})
	}
	if end > pos {
		return nil, nil, fail(StatusInvalidParameter, "bytes %d..%d pass the GPADL's %d", start, end, pos)
	}
	return dst, pfns, nil
}

// MapGpadl maps a GPADL the guest created on this server channel (KMCL
// VmbChannelMapGpadl): a view of its memory with the access asked for.
// One mapping per GPADL at a time; a writable map of a GPADL marked
// read-only fails. Allowed from the Opened callback until the Closed
// callback returns; mappings left then are unmapped.
func (c *Channel) MapGpadl(id uint32, access guestmem.Access) (*guestmem.RangeView, error) {
	if err := c.serverOnly("MapGpadl"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refuseInSave("MapGpadl"); err != nil {
		return nil, err // a save records which GPADLs are mapped
	}
	if c.hc == nil {
		return nil, fail(StatusInvalidDeviceState, "MapGpadl on a channel that is not open")
	}
	if c.remap[id] {
		// Mapped before a save: the mapping is rebuilt, not taken anew.
		v, err := c.hc.Gpadls.Remap(id, access)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", StatusInvalidParameter, err)
		}
		delete(c.remap, id)
		return v, nil
	}
	v, err := c.hc.Gpadls.Map(id, access)
	if err != nil {
		st := StatusInvalidParameter
		if errors.Is(err, host.ErrGpadlMapped) || errors.Is(err, host.ErrGpadlReadOnly) {
			st = StatusInvalidDeviceState
		}
		return nil, fmt.Errorf("%w: %w", st, err)
	}
	c.mapped[id] = true
	return v, nil
}

// UnmapGpadl ends a mapping (KMCL VmbChannelUnmapGpadl); a teardown the
// guest asked for meanwhile completes now.
func (c *Channel) UnmapGpadl(id uint32) error {
	if err := c.serverOnly("UnmapGpadl"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refuseInSave("UnmapGpadl"); err != nil {
		return err
	}
	if c.hc == nil || !c.mapped[id] {
		return fail(StatusInvalidParameter, "GPADL %#x is not mapped", id)
	}
	delete(c.mapped, id)
	delete(c.remap, id)
	if err := c.hc.Gpadls.Unmap(id); err != nil {
		return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	return nil
}

// MarkGpadlReadOnly records that the guest shared GPADL id read-only (as
// the VSP's protocol says: there is no bit for it on the wire); every
// later writable MapGpadl of it fails.
func (c *Channel) MarkGpadlReadOnly(id uint32) error {
	if err := c.serverOnly("MarkGpadlReadOnly"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hc == nil {
		return fail(StatusInvalidDeviceState, "MarkGpadlReadOnly on a channel that is not open")
	}
	if err := c.hc.Gpadls.MarkReadOnly(id); err != nil {
		return fmt.Errorf("%w: %w", StatusInvalidParameter, err)
	}
	return nil
}

// destroyGpadls destroys (client) or unmaps (server) the GPADLs the Closed
// callback left.
func (c *Channel) destroyGpadls() {
	c.mu.Lock()
	c.xsets = nil // their buffers go with the GPADLs
	c.mu.Unlock()
	if c.server {
		c.mu.Lock()
		for id := range c.mapped {
			if c.hc != nil {
				c.hc.Gpadls.Unmap(id) //nolint:errcheck // mapped by us, so known
			}
		}
		c.mapped, c.remap = nil, nil
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	ids := make([]uint32, 0, len(c.gpadls))
	for id := range c.gpadls {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		ctx, cancel := teardownContext()
		c.DeleteGpadl(ctx, id) //nolint:errcheck // the host may be gone or silent
		cancel()
	}
	c.mu.Lock()
	c.gpadls = nil
	c.mu.Unlock()
}
