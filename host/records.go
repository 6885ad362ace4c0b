package host

import (
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

// Record kinds of the bus state (scope savedstate.ScopeBus), one guest
// connection per save. docs/SAVED_STATE.md documents every body.
// Bus kinds are numbered from 0x0100; all are critical: a host that does
// not understand one of them cannot continue the connection.
const (
	// KindBusConnection: negotiation state, first record.
	KindBusConnection savedstate.Kind = 0x0100
	// KindBusChannel: one channel id in use, with its offer and state.
	KindBusChannel savedstate.Kind = 0x0101
	// KindBusGpadl: one GPADL, complete or still arriving.
	KindBusGpadl savedstate.Kind = 0x0102
)

// busIdentity is the Begin identity of a bus state: what a restorer checks
// before anything else, so a channel state fed to Restore is refused.
var busIdentity = []byte("govmbus bus v1")

// Channel states in KindBusChannel.
const (
	chanOffered   uint8 = 0
	chanOpen      uint8 = 1
	chanRescinded uint8 = 2
	chanReleased  uint8 = 3
)

// GPADL states in KindBusGpadl (gpadlState's values).
const (
	savedAssembling  = uint8(gpadlAssembling)
	savedCreated     = uint8(gpadlCreated)
	savedTearingDown = uint8(gpadlTearingDown)
)

// Bounds on a bus state, which is hostile input.
const (
	maxSavedGpadlMsgs = 1 << 14 // header + bodies of one GPADL: a 64 KiB buffer in words of 8
	maxSavedRanges    = 1 << 13
	maxSavedPFNs      = 1 << 20
)

// connRecord is KindBusConnection's body.
type connRecord struct {
	Contacted    bool                  `json:"contacted"`
	Version      protocol.Version      `json:"version"`
	Features     protocol.FeatureFlags `json:"features"`
	MessageConn  uint32                `json:"message_connection_id"`
	OffersSent   bool                  `json:"offers_sent"`
	ShuttingDown bool                  `json:"shutting_down"`
	Greeted      bool                  `json:"greeted"`
	HasMemory    bool                  `json:"has_memory"`
	MemorySize   uint64                `json:"memory_size"`
	Bad          uint32                `json:"bad_messages"`
}

// connRecordLen is the size of connRecord's body.
const connRecordLen = 1 + 4 + 4 + 4 + 4 + 8 + 4

func (r *connRecord) encode() []byte {
	var e savedstate.Encoder
	e.Grow(connRecordLen)
	e.Bool(r.Contacted).U32(uint32(r.Version)).U32(uint32(r.Features)).U32(r.MessageConn)
	e.Bool(r.OffersSent).Bool(r.ShuttingDown).Bool(r.Greeted).Bool(r.HasMemory)
	e.U64(r.MemorySize).U32(r.Bad)
	return e.Body()
}

func decodeConn(b []byte) (*connRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &connRecord{}
	r.Contacted = d.Bool()
	r.Version = protocol.Version(d.U32())
	r.Features = protocol.FeatureFlags(d.U32())
	r.MessageConn = d.U32()
	r.OffersSent, r.ShuttingDown, r.Greeted, r.HasMemory = d.Bool(), d.Bool(), d.Bool(), d.Bool()
	r.MemorySize = d.U64()
	r.Bad = d.U32()
	return r, d.Err()
}

// chanRecord is KindBusChannel's body.
type chanRecord struct {
	ChannelID    uint32                `json:"channel_id"`
	Dynamic      bool                  `json:"dynamic"` // made by Guest.Offer, not Config.Devices
	Type         protocol.GUID         `json:"interface_type"`
	Instance     protocol.GUID         `json:"interface_instance"`
	Subchannel   uint16                `json:"subchannel_index"`
	Flags        protocol.OfferFlags   `json:"offer_flags"`
	MMIO         uint16                `json:"mmio_megabytes"`
	UserDefined  protocol.UserDefined  `json:"-"`
	ConnectionID uint32                `json:"connection_id"`
	State        uint8                 `json:"state"` // chanOffered …
	Open         *protocol.OpenChannel `json:"open,omitempty"`
}

func (r *chanRecord) encode() []byte {
	var e savedstate.Encoder
	var open []byte
	if r.State == chanOpen {
		open = protocol.Marshal(r.Open)
	}
	e.Grow(4 + 1 + len(r.Type) + len(r.Instance) + 2 + 2 + 2 + len(r.UserDefined) + 4 + 1 + 4 + len(open))
	e.U32(r.ChannelID).Bool(r.Dynamic).Raw(r.Type[:]).Raw(r.Instance[:]).U16(r.Subchannel)
	e.U16(uint16(r.Flags)).U16(r.MMIO).Raw(r.UserDefined[:]).U32(r.ConnectionID).U8(r.State)
	if r.State == chanOpen {
		e.Bytes(open)
	}
	return e.Body()
}

func decodeChan(b []byte) (*chanRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &chanRecord{}
	r.ChannelID = d.U32()
	r.Dynamic = d.Bool()
	d.RawInto(r.Type[:])
	d.RawInto(r.Instance[:])
	r.Subchannel = d.U16()
	r.Flags = protocol.OfferFlags(d.U16())
	r.MMIO = d.U16()
	d.RawInto(r.UserDefined[:])
	r.ConnectionID = d.U32()
	r.State = d.U8()
	switch r.State {
	case chanOffered, chanRescinded, chanReleased:
	case chanOpen:
		m, err := decodeMessage(d.Bytes(256))
		if err != nil {
			d.Fail("open parameters: %v", err)
			break
		}
		oc, ok := m.(*protocol.OpenChannel)
		if !ok {
			d.Fail("open parameters are a %v message", m.Type())
			break
		}
		r.Open = oc
	default:
		d.Fail("channel state %d", r.State)
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func decodeMessage(b []byte) (protocol.Message, error) {
	if b == nil {
		return nil, savedstate.ErrInvalid
	}
	return protocol.Decode(b)
}

// gpadlRecord is KindBusGpadl's body.
type gpadlRecord struct {
	ID        uint32 `json:"gpadl_id"`
	ChannelID uint32 `json:"channel_id"`
	State     uint8  `json:"state"`
	Mapped    bool   `json:"mapped"`
	ReadOnly  bool   `json:"read_only"`
	Ring      bool   `json:"ring"`
	// Msgs are the GpadlHeader and GpadlBody messages of a GPADL still
	// arriving; Ranges those of one complete.
	Msgs   [][]byte      `json:"messages,omitempty"`
	Ranges []rangeRecord `json:"ranges,omitempty"`
	parsed []protocol.Message
}

type rangeRecord struct {
	ByteCount  uint32   `json:"byte_count"`
	ByteOffset uint32   `json:"byte_offset"`
	PFNs       []uint64 `json:"pfns"`
}

func (r *gpadlRecord) encode() []byte {
	var e savedstate.Encoder
	e.Grow(r.encodedLen())
	e.U32(r.ID).U32(r.ChannelID).U8(r.State).Bool(r.Mapped).Bool(r.ReadOnly).Bool(r.Ring)
	if r.State == savedAssembling {
		e.U32(uint32(len(r.Msgs)))
		for _, m := range r.Msgs {
			e.Bytes(m)
		}
		return e.Body()
	}
	e.U32(uint32(len(r.Ranges)))
	for _, rg := range r.Ranges {
		e.U32(rg.ByteCount).U32(rg.ByteOffset).U32(uint32(len(rg.PFNs)))
		for _, p := range rg.PFNs {
			e.U64(p)
		}
	}
	return e.Body()
}

// encodedLen is the size of r's body.
func (r *gpadlRecord) encodedLen() int {
	n := 4 + 4 + 1 + 1 + 1 + 1 + 4
	if r.State == savedAssembling {
		for _, m := range r.Msgs {
			n += 4 + len(m)
		}
		return n
	}
	for _, rg := range r.Ranges {
		n += 4 + 4 + 4 + 8*len(rg.PFNs)
	}
	return n
}

func decodeGpadl(b []byte) (*gpadlRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &gpadlRecord{}
	r.ID, r.ChannelID, r.State = d.U32(), d.U32(), d.U8()
	r.Mapped, r.ReadOnly, r.Ring = d.Bool(), d.Bool(), d.Bool()
	switch r.State {
	case savedAssembling:
		n := d.Count(4)
		if n > maxSavedGpadlMsgs || (n == 0 && d.Err() == nil) {
			d.Fail("%d GPADL messages", n)
			n = 0
		}
		for i := 0; i < n; i++ {
			raw := d.Bytes(256)
			m, err := decodeMessage(raw)
			if err != nil {
				d.Fail("GPADL message %d: %v", i, err)
				break
			}
			want := protocol.TypeGpadlBody
			if i == 0 {
				want = protocol.TypeGpadlHeader
			}
			if m.Type() != want {
				d.Fail("GPADL message %d is %v, want %v", i, m.Type(), want)
				break
			}
			r.Msgs = append(r.Msgs, raw)
			r.parsed = append(r.parsed, m)
		}
		if r.Mapped || r.Ring || r.ReadOnly {
			d.Fail("GPADL %#x still arriving yet in use", r.ID)
		}
	case savedCreated, savedTearingDown:
		n := d.Count(12)
		if n > maxSavedRanges || (n == 0 && d.Err() == nil) {
			d.Fail("%d ranges", n)
			n = 0
		}
		total := 0
		for i := 0; i < n; i++ {
			rg := rangeRecord{ByteCount: d.U32(), ByteOffset: d.U32()}
			k := d.Count(8)
			total += k
			if total > maxSavedPFNs {
				d.Fail("more than %d pages", maxSavedPFNs)
				break
			}
			rg.PFNs = make([]uint64, k)
			for j := range rg.PFNs {
				rg.PFNs[j] = d.U64()
			}
			r.Ranges = append(r.Ranges, rg)
		}
	default:
		d.Fail("GPADL state %d", r.State)
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func init() {
	savedstate.RegisterKind(KindBusConnection, savedstate.KindInfo{Name: "bus-connection", Describe: func(b []byte) (any, error) { return decodeConn(b) }})
	savedstate.RegisterKind(KindBusChannel, savedstate.KindInfo{Name: "bus-channel", Describe: func(b []byte) (any, error) { return decodeChan(b) }})
	savedstate.RegisterKind(KindBusGpadl, savedstate.KindInfo{Name: "bus-gpadl", Describe: func(b []byte) (any, error) { return decodeGpadl(b) }})
}
