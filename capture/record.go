package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is what a record holds.
type Kind uint8

// The record kinds.
const (
	KindControl Kind = 1 // a control message, whole
	KindPacket  Kind = 2 // a ring packet: descriptor, type header, payload
	KindSignal  Kind = 3 // a signal (header only)
	KindEvent   Kind = 4 // a servicing or capture event: a JSON object
)

func (k Kind) String() string {
	switch k {
	case KindControl:
		return "control"
	case KindPacket:
		return "packet"
	case KindSignal:
		return "signal"
	case KindEvent:
		return "event"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Dir is the direction a record crossed the bus in.
type Dir uint8

// The directions, named from the host: In is guest→host, Out host→guest.
const (
	In  Dir = 0
	Out Dir = 1
)

func (d Dir) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return fmt.Sprintf("dir(%d)", uint8(d))
}

// Record flags.
const (
	// FlagTruncated: the record's bytes were cut at the snap length;
	// RecordHeader.OrigLen is their full length.
	FlagTruncated uint8 = 1 << 0
)

// RecordVersion is the version of the record header this package writes.
const RecordVersion = 1

// RecordHeaderSize is the length of a record's header.
//
//	offset  size  field
//	0       1     version (RecordVersion)
//	1       1     kind (Kind)
//	2       1     direction (Dir: 0 guest→host, 1 host→guest)
//	3       1     flags (FlagTruncated)
//	4       4     channel id (0 for control messages and events)
//	8       8     guest id (the host's number for the connection; 0 for events)
//	16      4     original length of the bytes that follow the header
//	20      4     reserved, 0
//
// All fields are little-endian.
const RecordHeaderSize = 24

// RecordHeader is a record's header, decoded.
type RecordHeader struct {
	Version uint8
	Kind    Kind
	Dir     Dir
	Flags   uint8
	Channel uint32
	Guest   uint64
	OrigLen uint32
}

// ErrRecord is wrapped by the errors of records that do not parse.
var ErrRecord = errors.New("capture: malformed record")

func (h *RecordHeader) put(b []byte) {
	b[0] = h.Version
	b[1] = byte(h.Kind)
	b[2] = byte(h.Dir)
	b[3] = h.Flags
	binary.LittleEndian.PutUint32(b[4:], h.Channel)
	binary.LittleEndian.PutUint64(b[8:], h.Guest)
	binary.LittleEndian.PutUint32(b[16:], h.OrigLen)
	binary.LittleEndian.PutUint32(b[20:], 0)
}

// ParseRecord splits a record into its header and bytes. The bytes alias
// b.
func ParseRecord(b []byte) (RecordHeader, []byte, error) {
	var h RecordHeader
	if len(b) < RecordHeaderSize {
		return h, nil, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrRecord, len(b), RecordHeaderSize)
	}
	h = RecordHeader{
		Version: b[0],
		Kind:    Kind(b[1]),
		Dir:     Dir(b[2]),
		Flags:   b[3],
		Channel: binary.LittleEndian.Uint32(b[4:]),
		Guest:   binary.LittleEndian.Uint64(b[8:]),
		OrigLen: binary.LittleEndian.Uint32(b[16:]),
	}
	if h.Version != RecordVersion {
		return h, nil, fmt.Errorf("%w: version %d", ErrRecord, h.Version)
	}
	if h.Kind < KindControl || h.Kind > KindEvent {
		return h, nil, fmt.Errorf("%w: kind %d", ErrRecord, h.Kind)
	}
	if h.Dir > Out {
		return h, nil, fmt.Errorf("%w: direction %d", ErrRecord, h.Dir)
	}
	data := b[RecordHeaderSize:]
	if uint64(len(data)) > uint64(h.OrigLen) {
		return h, nil, fmt.Errorf("%w: %d bytes, more than the original %d", ErrRecord, len(data), h.OrigLen)
	}
	if uint64(len(data)) < uint64(h.OrigLen) && h.Flags&FlagTruncated == 0 {
		return h, nil, fmt.Errorf("%w: %d of %d bytes, not marked truncated", ErrRecord, len(data), h.OrigLen)
	}
	return h, data, nil
}

// Descriptor is the 16-byte descriptor of a ring packet, as on the wire.
type Descriptor struct {
	Type          uint16
	Offset8       uint16 // data offset in 8-byte units
	Len8          uint16 // total length in 8-byte units, without the footer
	Flags         uint16
	TransactionID uint64
}

// DescriptorSize is the length of a packet descriptor.
const DescriptorSize = 16

// ParseDescriptor decodes the descriptor at the start of a packet record's
// bytes.
func ParseDescriptor(b []byte) (Descriptor, error) {
	if len(b) < DescriptorSize {
		return Descriptor{}, fmt.Errorf("%w: packet of %d bytes, shorter than its descriptor", ErrRecord, len(b))
	}
	return Descriptor{
		Type:          binary.LittleEndian.Uint16(b[0:]),
		Offset8:       binary.LittleEndian.Uint16(b[2:]),
		Len8:          binary.LittleEndian.Uint16(b[4:]),
		Flags:         binary.LittleEndian.Uint16(b[6:]),
		TransactionID: binary.LittleEndian.Uint64(b[8:]),
	}, nil
}

// putDescriptor writes the descriptor of a packet with a type header of
// hdrLen bytes and payloadLen payload bytes, as a ring writer frames it.
// Lengths a ring cannot hold saturate at 0xFFFF units.
func putDescriptor(b []byte, typ, flags uint16, txid uint64, hdrLen, payloadLen int) {
	off := (DescriptorSize + hdrLen + 7) / 8
	total := off + (payloadLen+7)/8
	binary.LittleEndian.PutUint16(b[0:], typ)
	binary.LittleEndian.PutUint16(b[2:], sat16(off))
	binary.LittleEndian.PutUint16(b[4:], sat16(total))
	binary.LittleEndian.PutUint16(b[6:], flags)
	binary.LittleEndian.PutUint64(b[8:], txid)
}

func sat16(n int) uint16 {
	if n > 0xFFFF {
		return 0xFFFF
	}
	return uint16(n)
}
