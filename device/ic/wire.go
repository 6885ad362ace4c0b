package ic

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is the sentinel of every message that breaks the wire
// format; the concrete error says how.
var ErrMalformed = errors.New("ic: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Sizes of the framing (DEVICES.md §1.2, §3.2).
const (
	PipeHeaderSize = 8
	HeaderSize     = 20
	// MaxPipeData is the largest pipe data size a reader accepts
	// (Linux's MAX_PIPE_DATA_PAYLOAD).
	MaxPipeData = 16384
	// pipeData is the pipe header type of a data packet.
	pipeData = 1
)

// MsgType is an IC message type.
type MsgType uint16

// Message types (DEVICES.md §3.2).
const (
	MsgNegotiate MsgType = 0
	MsgHeartbeat MsgType = 1
	MsgKVP       MsgType = 2
	MsgShutdown  MsgType = 3
	MsgTimeSync  MsgType = 4
	MsgVSS       MsgType = 5
	MsgFileCopy  MsgType = 7
)

func (t MsgType) String() string {
	switch t {
	case MsgNegotiate:
		return "negotiate"
	case MsgHeartbeat:
		return "heartbeat"
	case MsgKVP:
		return "kvp"
	case MsgShutdown:
		return "shutdown"
	case MsgTimeSync:
		return "timesync"
	case MsgVSS:
		return "vss"
	case MsgFileCopy:
		return "filecopy"
	}
	return fmt.Sprintf("type-%d", uint16(t))
}

// Flags of the IC header.
const (
	FlagTransaction uint8 = 1
	FlagRequest     uint8 = 2
	FlagResponse    uint8 = 4
	// FlagsRequest is what a host request carries, FlagsResponse a guest
	// reply.
	FlagsRequest  = FlagTransaction | FlagRequest
	FlagsResponse = FlagTransaction | FlagResponse
)

// Status codes (HRESULTs) of the IC header (DEVICES.md §3.2).
const (
	StatusOK           uint32 = 0x00000000
	StatusFail         uint32 = 0x80004005
	StatusNoMoreItems  uint32 = 0x80070103 // Linux HV_S_CONT
	StatusNotFound     uint32 = 0x80041002
	StatusInvalidArg   uint32 = 0x80070057
	StatusNotSupported uint32 = 0x80070032
)

// StatusName names a status code for logs and the decoder.
func StatusName(s uint32) string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusFail:
		return "fail"
	case StatusNoMoreItems:
		return "no-more-items"
	case StatusNotFound:
		return "not-found"
	case StatusInvalidArg:
		return "invalid-arg"
	case StatusNotSupported:
		return "not-supported"
	}
	return fmt.Sprintf("%#08x", s)
}

// Version is an IC version: on the wire {u16 major, u16 minor}.
type Version struct{ Major, Minor uint16 }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func getVersion(b []byte) Version {
	return Version{binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:])}
}

func putVersion(b []byte, v Version) {
	binary.LittleEndian.PutUint16(b, v.Major)
	binary.LittleEndian.PutUint16(b[2:], v.Minor)
}

// Header is the 20-byte IC message header.
type Header struct {
	Framework  Version
	Type       MsgType
	MsgVersion Version
	Size       uint16 // body bytes after the header
	Status     uint32
	TxID       uint8 // the IC transaction id
	Flags      uint8
	Reserved   [2]byte
}

// Marshal writes h into b[:HeaderSize]; b must be at least that long
// (the caller's bug otherwise: it panics).
func (h *Header) Marshal(b []byte) {
	_ = b[HeaderSize-1]
	putVersion(b[0:], h.Framework)
	binary.LittleEndian.PutUint16(b[4:], uint16(h.Type))
	putVersion(b[6:], h.MsgVersion)
	binary.LittleEndian.PutUint16(b[10:], h.Size)
	binary.LittleEndian.PutUint32(b[12:], h.Status)
	b[16], b[17] = h.TxID, h.Flags
	copy(b[18:20], h.Reserved[:])
}

// Unmarshal reads h from b, which must hold at least HeaderSize bytes.
func (h *Header) Unmarshal(b []byte) error {
	if len(b) < HeaderSize {
		return malformed("IC header of %d bytes, want %d", len(b), HeaderSize)
	}
	h.Framework = getVersion(b[0:])
	h.Type = MsgType(binary.LittleEndian.Uint16(b[4:]))
	h.MsgVersion = getVersion(b[6:])
	h.Size = binary.LittleEndian.Uint16(b[10:])
	h.Status = binary.LittleEndian.Uint32(b[12:])
	h.TxID, h.Flags = b[16], b[17]
	copy(h.Reserved[:], b[18:20])
	return nil
}

// Message is one IC message taken apart: its headers and a copy of its
// body (exactly Header.Size bytes).
type Message struct {
	HasPipe  bool
	PipeType uint32
	PipeSize uint32
	Header   Header
	Body     []byte
}

// Parse takes a packet payload apart: pipe header, IC header and body.
// It copies the body, so the payload may change afterwards (a peer's
// ring). The pipe data may be longer than the IC message (a guest's reply
// keeps the request's whole size) but not shorter; padding past it is
// ignored.
func Parse(payload []byte) (*Message, error) {
	return parse(payload, true)
}

// ParseIC takes apart an IC message without a pipe header (the decoder's
// input when it was given one without).
func ParseIC(b []byte) (*Message, error) { return parse(b, false) }

func parse(payload []byte, pipe bool) (*Message, error) {
	m := &Message{HasPipe: pipe}
	rest := payload
	if pipe {
		if len(payload) < PipeHeaderSize {
			return nil, malformed("payload of %d bytes, no room for the pipe header", len(payload))
		}
		m.PipeType = binary.LittleEndian.Uint32(payload)
		m.PipeSize = binary.LittleEndian.Uint32(payload[4:])
		if m.PipeType != pipeData {
			return nil, malformed("pipe packet type %d, want 1 (data)", m.PipeType)
		}
		if m.PipeSize > MaxPipeData || uint64(m.PipeSize) > uint64(len(payload)-PipeHeaderSize) {
			return nil, malformed("pipe data size %d in a payload of %d bytes", m.PipeSize, len(payload))
		}
		rest = payload[PipeHeaderSize : PipeHeaderSize+int(m.PipeSize)]
	}
	if err := m.Header.Unmarshal(rest); err != nil {
		return nil, err
	}
	if int(m.Header.Size) > len(rest)-HeaderSize {
		return nil, malformed("message size %d, %d bytes follow the header", m.Header.Size, len(rest)-HeaderSize)
	}
	m.Body = append([]byte(nil), rest[HeaderSize:HeaderSize+int(m.Header.Size)]...)
	return m, nil
}

// Build returns the payload of one IC message: pipe header, h (its Size
// set to len(body)) and body, zero-padded to 8 bytes as the ring pads.
func Build(h Header, body []byte) []byte {
	if len(body) > MaxPipeData-HeaderSize {
		panic("ic: body too large for one pipe packet")
	}
	h.Size = uint16(len(body))
	n := PipeHeaderSize + HeaderSize + len(body)
	b := make([]byte, (n+7)&^7)
	binary.LittleEndian.PutUint32(b, pipeData)
	binary.LittleEndian.PutUint32(b[4:], uint32(HeaderSize+len(body)))
	h.Marshal(b[PipeHeaderSize:])
	copy(b[PipeHeaderSize+HeaderSize:], body)
	return b
}

// Reply turns a request payload, copied, into the guest's reply as Linux
// writes it: the same bytes with the flags set to a response, status and
// body edited by the caller afterwards through the offsets below.
func Reply(req []byte) []byte {
	b := append([]byte(nil), req...)
	if len(b) > PipeHeaderSize+17 {
		b[PipeHeaderSize+17] = FlagsResponse
	}
	return b
}

// Offsets in a payload with a pipe header, for in-place replies.
const (
	offStatus = PipeHeaderSize + 12
	offSize   = PipeHeaderSize + 10
	offBody   = PipeHeaderSize + HeaderSize
)

// SetStatus writes the status of a payload with a pipe header.
func SetStatus(payload []byte, status uint32) {
	binary.LittleEndian.PutUint32(payload[offStatus:], status)
}
