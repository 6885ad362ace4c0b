package channel

import (
	"context"
	"encoding/binary"
	"errors"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"
	"time"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guestmem"
)

func TestGpadlMapRules(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	ctx := context.Background()
	ids := make(chan uint32, 2)
	var kept uint32
	ccb := StateCallbacks{
		Opened: func(c *Channel) error {
			// GPADLs may be created from Opened on.
			pfn, err := r.cl.Pages().Alloc(2)
			if err != nil {
				return err
			}
			id, err := c.CreateGpadl(ctx, []gpa.Range{{ByteCount: 2 * 4096, PFNs: []uint64{pfn, pfn + 1}}}, GpadlReadOnly)
			if err != nil {
				return err
			}
			ids <- id
			pfn2, err := r.cl.Pages().Alloc(1)
			if err != nil {
				return err
			}
			// Left for Closed (and the cleanup after it) to destroy.
			kept, err = c.CreateGpadl(ctx, []gpa.Range{{ByteCount: 4096, PFNs: []uint64{pfn2}}}, 0)
			ids <- kept
			return err
		},
	}
	type mapResult struct{ rw, ro, again, unknown error }
	res := make(chan mapResult, 1)
	var view *guestmem.RangeView
	sproc := func(s *Channel, p *Packet, payload []byte, _ PacketFlags) {
		id := binary.LittleEndian.Uint32(payload)
		var m mapResult
		if err := s.MarkGpadlReadOnly(id); err != nil {
			m.rw = err
		} else {
			_, m.rw = s.MapGpadl(id, guestmem.ReadWrite)
		}
		view, m.ro = s.MapGpadl(id, guestmem.ReadOnly)
		_, m.again = s.MapGpadl(id, guestmem.ReadOnly)
		_, m.unknown = s.MapGpadl(0xdead, guestmem.ReadOnly)
		if _, err := s.MapGpadl(binary.LittleEndian.Uint32(payload[4:]), guestmem.ReadWrite); err != nil {
			m.unknown = err // the second GPADL stays mapped until Closed
		}
		res <- m
		p.Complete(nil)
	}
	s, c := r.pair(t, sproc, ignore, StateCallbacks{}, ccb)
	id, id2 := <-ids, <-ids
	if !c.GpadlIsReadOnly(id) || c.GpadlIsReadOnly(id2) {
		t.Fatal("read-only flag not recorded")
	}
	msg := make([]byte, 8)
	binary.LittleEndian.PutUint32(msg, id)
	binary.LittleEndian.PutUint32(msg[4:], id2)
	_, err := c.SendSynchronousRequest(msg, nil, 0, nil, time.Second)
	must(t, err)
	m := <-res
	switch {
	case !errors.Is(m.rw, StatusInvalidDeviceState):
		t.Fatalf("writable map of a read-only GPADL: %v", m.rw)
	case m.ro != nil || view.Len() != 2*4096 || view.Access() != guestmem.ReadOnly:
		t.Fatalf("read-only map: %v", m.ro)
	case !errors.Is(m.again, StatusInvalidDeviceState):
		t.Fatalf("second mapping: %v", m.again)
	case !errors.Is(m.unknown, StatusInvalidParameter):
		t.Fatalf("unknown GPADL: %v", m.unknown)
	}
	// Delete blocks while the server has it mapped.
	deleted := make(chan error, 1)
	go func() { deleted <- c.DeleteGpadl(ctx, id) }()
	select {
	case err := <-deleted:
		t.Fatalf("delete returned while mapped: %v", err)
	case <-time.After(40 * time.Millisecond):
	}
	must(t, s.UnmapGpadl(id))
	must(t, <-deleted)
	if err := s.UnmapGpadl(id); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("second unmap: %v", err)
	}
	// id2 is still mapped by the server and still held by the client:
	// Disable must unmap and destroy it (it would hang otherwise).
	must(t, c.Disable())
	if _, err := s.MapGpadl(id2, guestmem.ReadOnly); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("map on a closed channel: %v", err)
	}
	if _, err := s.CreateGpadl(ctx, nil, 0); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("CreateGpadl on a server: %v", err)
	}
}

func TestSubRanges(t *testing.T) {
	ranges := []gpa.Range{
		{ByteCount: 3*4096 - 100, ByteOffset: 100, PFNs: []uint64{10, 11, 12}},
		{ByteCount: 4096, PFNs: []uint64{20}},
	}
	got, _, err := subRanges(nil, nil, ranges, 4000, 4096*3-8)
	must(t, err)
	if len(got) != 2 || got[0].ByteOffset != 4 || got[0].PFNs[0] != 11 || got[0].ByteCount != 3*4096-100-4000 ||
		got[1].ByteCount != 4096*3-8-(3*4096-100-4000) || got[1].PFNs[0] != 20 {
		t.Fatalf("%+v", got)
	}
	for _, r := range got {
		must(t, r.Validate())
	}
	if _, _, err := subRanges(nil, nil, ranges, 4*4096, 1); err == nil {
		t.Fatal("range past the end accepted")
	}
}

func TestSendGpadl(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	got := make(chan string, 1)
	sproc := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) {
		v, err := p.ExternalData(guestmem.ReadOnly)
		if err != nil {
			got <- err.Error()
		} else {
			b := make([]byte, v.Len())
			v.ReadAt(b, 0)
			got <- string(b)
		}
		p.Complete(nil)
	}
	_, c := r.pair(t, sproc, ignore, StateCallbacks{}, StateCallbacks{})
	pfn, err := r.cl.Pages().Alloc(2)
	must(t, err)
	copy(r.cl.Memory().Bytes()[pfn*4096+4090:], "across pages")
	id, err := c.CreateGpadl(context.Background(), []gpa.Range{{ByteCount: 2 * 4096, PFNs: []uint64{pfn, pfn + 1}}}, 0)
	must(t, err)
	p, err := c.AllocatePacket()
	must(t, err)
	done := make(chan Status, 1)
	p.SetCompletion(func(_ *OutPacket, st Status, _ []byte) { done <- st })
	must(t, p.SendGpadl([]byte("hdr"), id, 4090, 12, SendWaitForCompletion))
	if s := <-got; s != "across pages" {
		t.Fatalf("server read %q", s)
	}
	if st := <-done; st != StatusSuccess {
		t.Fatal(st)
	}
	p.Free()
	must(t, c.DeleteGpadl(context.Background(), id))
}
