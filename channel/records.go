package channel

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

// Record kinds of a channel state (scope savedstate.ScopeChannel); the
// Begin identity is the channel's (identitySize bytes: interface type,
// instance, subchannel index, reserved u16). docs/SAVED_STATE.md documents
// every body. Channel kinds are numbered from 0x0001; all are critical.
const (
	// KindChannelInfo: ids, open parameters, the transaction id
	// allocator and how many packet records follow. First record.
	KindChannelInfo savedstate.Kind = 0x0001
	// KindChannelMappings: the GPADLs the server had mapped.
	KindChannelMappings savedstate.Kind = 0x0002
	// KindChannelPacket: one outgoing packet object in use, with the
	// VSP's own bytes for it.
	KindChannelPacket savedstate.Kind = 0x0003
	// KindChannelCompletion: a completion of an incoming packet, queued
	// behind a full ring.
	KindChannelCompletion savedstate.Kind = 0x0004
	// KindChannelRestart: an incoming packet marked restartable that was
	// still being processed, to indicate again after the restore.
	KindChannelRestart savedstate.Kind = 0x0005
	// KindChannelDevice: the VSP's own state of the channel
	// (SetSaveStateCallbacks). Third, when there is one.
	KindChannelDevice savedstate.Kind = 0x0006
)

const identitySize = 36

// Bounds on a channel state, which is hostile input.
const (
	maxSavedMappings = 1 << 12
	maxSavedRanges   = MTU / 16
	maxSavedPFNs     = MTU / 8
)

// Per-packet states in a packet's library bytes.
const (
	savedQueued   uint8 = 1 // in the send queue, payload kept
	savedInFlight uint8 = 2 // in the ring, waiting for the peer's completion
)

// infoRecord is KindChannelInfo's body.
type infoRecord struct {
	ChannelID    uint32                `json:"channel_id"`
	ConnectionID uint32                `json:"connection_id"`
	Open         *protocol.OpenChannel `json:"open,omitempty"`
	TxSeq        uint32                `json:"transaction_sequence"`
	ServerFlags  uint32                `json:"server_flags"`
	Packets      uint32                `json:"packets"`
	Completions  uint32                `json:"completions"`
}

func (r *infoRecord) encode() []byte {
	var e savedstate.Encoder
	e.U32(r.ChannelID).U32(r.ConnectionID)
	if r.Open != nil {
		e.Bytes(protocol.Marshal(r.Open))
	} else {
		e.Bytes(nil)
	}
	e.U32(r.TxSeq).U32(r.ServerFlags).U32(r.Packets).U32(r.Completions)
	return e.Body()
}

func decodeInfo(b []byte) (*infoRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &infoRecord{ChannelID: d.U32(), ConnectionID: d.U32()}
	if raw := d.Bytes(256); len(raw) > 0 {
		m, err := protocol.Decode(raw)
		switch oc, ok := m.(*protocol.OpenChannel); {
		case err != nil:
			d.Fail("open parameters are not an OpenChannel message (%w)", err)
		case !ok:
			d.Fail("open parameters are not an OpenChannel message (a %T)", m)
		default:
			r.Open = oc
		}
	}
	r.TxSeq, r.ServerFlags, r.Packets, r.Completions = d.U32(), d.U32(), d.U32(), d.U32()
	if err := d.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func encodeMappings(ids []uint32) []byte {
	var e savedstate.Encoder
	e.U32(uint32(len(ids)))
	for _, id := range ids {
		e.U32(id)
	}
	return e.Body()
}

func decodeMappings(b []byte) ([]uint32, error) {
	d := savedstate.NewDecoder(b)
	n := d.Count(4)
	if n > maxSavedMappings {
		d.Fail("%d mappings", n)
		n = 0
	}
	ids := make([]uint32, n)
	seen := make(map[uint32]bool, n)
	for i := range ids {
		ids[i] = d.U32()
		if seen[ids[i]] {
			d.Fail("GPADL %#x mapped twice", ids[i])
		}
		seen[ids[i]] = true
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// libPacket is the library's state of one outgoing packet: the bytes the
// restore-packet callback hands to OutPacket.Restore.
type libPacket struct {
	Slot    uint32      `json:"slot"`
	State   uint8       `json:"state"` // savedQueued, savedInFlight
	TxID    uint64      `json:"transaction_id"`
	Wait    bool        `json:"wait_for_completion"`
	Payload []byte      `json:"payload,omitempty"`
	Ranges  []gpa.Range `json:"ranges,omitempty"`
}

// appendTo appends the encoded bytes to b: the save of many packets
// encodes them all into one arena.
func (l *libPacket) appendTo(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, l.Slot)
	b = append(b, l.State)
	b = le.AppendUint64(b, l.TxID)
	w := byte(0)
	if l.Wait {
		w = 1
	}
	b = append(b, w)
	b = le.AppendUint32(b, uint32(len(l.Payload)))
	b = append(b, l.Payload...)
	b = le.AppendUint32(b, uint32(len(l.Ranges)))
	for _, r := range l.Ranges {
		b = le.AppendUint32(b, r.ByteCount)
		b = le.AppendUint32(b, r.ByteOffset)
		b = le.AppendUint32(b, uint32(len(r.PFNs)))
		for _, p := range r.PFNs {
			b = le.AppendUint64(b, p)
		}
	}
	return b
}

// decodeLib decodes and checks one packet's library bytes on their own.
func decodeLib(b []byte) (*libPacket, error) {
	d := savedstate.NewDecoder(b)
	l := &libPacket{Slot: d.U32(), State: d.U8(), TxID: d.U64(), Wait: d.Bool()}
	l.Payload = d.Bytes(MTU)
	n := d.Count(12)
	if n > maxSavedRanges {
		d.Fail("%d ranges", n)
		n = 0
	}
	pfns := 0
	for i := 0; i < n && !d.Failed(); i++ {
		r := gpa.Range{ByteCount: d.U32(), ByteOffset: d.U32()}
		k := d.Count(8)
		if pfns += k; pfns > maxSavedPFNs {
			d.Fail("more than %d pages", maxSavedPFNs)
			break
		}
		r.PFNs = make([]uint64, k)
		for j := range r.PFNs {
			r.PFNs[j] = d.U64()
		}
		if err := r.Validate(); err != nil && !d.Failed() {
			d.Fail("range %d: %w", i, err)
		}
		l.Ranges = append(l.Ranges, r)
	}
	switch {
	case d.Err() != nil:
	case l.Slot >= maxOutPackets:
		d.Fail("packet slot %d", l.Slot)
	case uint32(l.TxID) != l.Slot || l.TxID>>32 == 0:
		d.Fail("transaction id %#x does not belong to slot %d", l.TxID, l.Slot)
	case l.State != savedQueued && l.State != savedInFlight:
		d.Fail("packet state %d", l.State)
	case l.State == savedInFlight && (!l.Wait || len(l.Payload) > 0 || len(l.Ranges) > 0):
		d.Fail("in-flight packet that keeps a payload or waits for nothing")
	case len(l.Ranges) > 0 && !l.Wait:
		d.Fail("external data without waiting for completion")
	case wireLen(len(l.Payload), l.Ranges) > MTU:
		d.Fail("packet of %d bytes passes the MTU", wireLen(len(l.Payload), l.Ranges))
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

// packetRecord is KindChannelPacket's body: the library's bytes and the
// VSP's.
type packetRecord struct {
	Lib *libPacket `json:"library"`
	VSP []byte     `json:"vsp"`
	lib []byte
}

func decodePacket(b []byte) (*packetRecord, error) {
	d := savedstate.NewDecoder(b)
	lib := d.Bytes(savedstate.MaxBody)
	vsp := d.Bytes(savedstate.MaxBody)
	if err := d.Err(); err != nil {
		return nil, err
	}
	l, err := decodeLib(lib)
	if err != nil {
		return nil, err
	}
	return &packetRecord{Lib: l, VSP: vsp, lib: lib}, nil
}

// completionRecord is KindChannelCompletion's body.
type completionRecord struct {
	TxID    uint64 `json:"transaction_id"`
	Payload []byte `json:"payload"`
}

func (r *completionRecord) encode() []byte {
	var e savedstate.Encoder
	e.U64(r.TxID).Bytes(r.Payload)
	return e.Body()
}

func decodeCompletion(b []byte) (*completionRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &completionRecord{TxID: d.U64(), Payload: d.Bytes(MTU)}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if wireLen(len(r.Payload), nil) > MTU {
		return nil, savedstate.ErrInvalid
	}
	return r, nil
}

// restartRecord is KindChannelRestart's body.
type restartRecord struct {
	TxID    uint64 `json:"transaction_id"`
	Want    bool   `json:"completion_requested"`
	Payload []byte `json:"payload"`
}

func (r *restartRecord) encode() []byte {
	var e savedstate.Encoder
	e.U64(r.TxID).Bool(r.Want).Bytes(r.Payload)
	return e.Body()
}

func decodeRestart(b []byte) (*restartRecord, error) {
	d := savedstate.NewDecoder(b)
	r := &restartRecord{TxID: d.U64(), Want: d.Bool(), Payload: d.Bytes(MTU)}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if wireLen(len(r.Payload), nil) > MTU {
		return nil, savedstate.ErrInvalid
	}
	return r, nil
}

func init() {
	savedstate.RegisterKind(KindChannelInfo, savedstate.KindInfo{Name: "channel-info", Describe: func(b []byte) (any, error) { return decodeInfo(b) }})
	savedstate.RegisterKind(KindChannelMappings, savedstate.KindInfo{Name: "channel-mappings", Describe: func(b []byte) (any, error) { return decodeMappings(b) }})
	savedstate.RegisterKind(KindChannelPacket, savedstate.KindInfo{Name: "channel-packet", Describe: func(b []byte) (any, error) { return decodePacket(b) }})
	savedstate.RegisterKind(KindChannelCompletion, savedstate.KindInfo{Name: "channel-completion", Describe: func(b []byte) (any, error) { return decodeCompletion(b) }})
	savedstate.RegisterKind(KindChannelRestart, savedstate.KindInfo{Name: "channel-restart", Describe: func(b []byte) (any, error) { return decodeRestart(b) }})
	savedstate.RegisterKind(KindChannelTransferPages, savedstate.KindInfo{Name: "channel-transfer-pages", Describe: func(b []byte) (any, error) { return decodeTransfer(b) }})
	savedstate.RegisterKind(KindChannelDevice, savedstate.KindInfo{Name: "channel-device", Describe: func(b []byte) (any, error) {
		dev, err := decodeDevice(b)
		if err != nil {
			return nil, err
		}
		return deviceJSON{Bytes: len(dev), Hex: hex.EncodeToString(dev)}, nil
	}})
}
