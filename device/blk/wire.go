package blk

import (
	"encoding/binary"

	"github.com/govmbus/govmbus/protocol"
)

// InterfaceType identifies blk channels (a random GUID fixed for govmbus).
var InterfaceType = protocol.MustParseGUID("3f6c2d1e-8b7a-4c59-9e10-6a4d2b8f0c71")

// InterfaceInstance is the instance offered by default.
var InterfaceInstance = protocol.MustParseGUID("00000000-0000-0000-0000-000000000001")

// Op is a request's operation.
type Op uint32

// Operations (docs/BLK.md).
const (
	OpIdentify Op = 1 // in-band; answers block size, size, flags, max transfer
	OpRead     Op = 2 // GPA-direct; the VSP writes the file's bytes into the ranges
	OpWrite    Op = 3 // GPA-direct; the VSP writes the ranges' bytes to the file
	OpFlush    Op = 4 // in-band; the file is synced
)

// Status is the first field of every response.
type Status uint32

// Statuses (docs/BLK.md).
const (
	StatusOK         Status = 0
	StatusBadRequest Status = 1 // malformed: size, reserved fields, op, data buffer
	StatusOutOfRange Status = 2 // offset+length beyond the disk
	StatusReadOnly   Status = 3 // WRITE to a read-only disk
	StatusTooLarge   Status = 4 // length beyond max transfer
	StatusIOError    Status = 5 // the backing file failed
)

var statusNames = [...]string{"ok", "bad request", "out of range", "read-only", "too large", "I/O error"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status(?)"
}

// Error makes a Status an error (StatusOK included: callers test for it).
func (s Status) Error() string { return "blk: " + s.String() }

// Flags of IDENTIFY.
const FlagReadOnly uint32 = 0x1

// Sizes and limits.
const (
	RequestSize        = 24
	ResponseSize       = 24
	BlockSize          = 512
	MaxPacket          = 4096 // largest request payload answered at all
	DefaultMaxTransfer = 256 << 10
	pageSize           = 4096
)

// Request is a request's payload:
//
//	0  u32 op
//	4  u32 reserved (0)
//	8  u64 offset
//	16 u32 length
//	20 u32 reserved (0)
type Request struct {
	Op     Op
	Offset uint64
	Length uint32
}

// Marshal writes r into b, which must hold RequestSize bytes.
func (r Request) Marshal(b []byte) {
	_ = b[RequestSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(r.Op))
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint64(b[8:], r.Offset)
	binary.LittleEndian.PutUint32(b[16:], r.Length)
	binary.LittleEndian.PutUint32(b[20:], 0)
}

// ParseRequest decodes a request payload. The channel pads payloads to 8
// bytes, so a payload may be longer than RequestSize only by padding
// (which must be zero); anything else, and non-zero reserved fields or an
// unknown op, is StatusBadRequest.
func ParseRequest(b []byte) (Request, Status) {
	if len(b) < RequestSize || len(b) >= RequestSize+8 {
		return Request{}, StatusBadRequest
	}
	for _, x := range b[RequestSize:] {
		if x != 0 {
			return Request{}, StatusBadRequest
		}
	}
	r := Request{
		Op:     Op(binary.LittleEndian.Uint32(b[0:])),
		Offset: binary.LittleEndian.Uint64(b[8:]),
		Length: binary.LittleEndian.Uint32(b[16:]),
	}
	if binary.LittleEndian.Uint32(b[4:]) != 0 || binary.LittleEndian.Uint32(b[20:]) != 0 {
		return Request{}, StatusBadRequest
	}
	if r.Op < OpIdentify || r.Op > OpFlush {
		return Request{}, StatusBadRequest
	}
	return r, StatusOK
}

// Response is every completion's payload:
//
//	0  u32 status
//	4  u32 block size   (IDENTIFY; else 0)
//	8  u64 size         (IDENTIFY: disk bytes; else 0)
//	16 u32 flags        (IDENTIFY: FlagReadOnly; else 0)
//	20 u32 value        (IDENTIFY: max transfer; READ/WRITE: bytes done; else 0)
type Response struct {
	Status    Status
	BlockSize uint32
	Size      uint64
	Flags     uint32
	Value     uint32
}

// Marshal writes r into b, which must hold ResponseSize bytes.
func (r Response) Marshal(b []byte) {
	_ = b[ResponseSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(r.Status))
	binary.LittleEndian.PutUint32(b[4:], r.BlockSize)
	binary.LittleEndian.PutUint64(b[8:], r.Size)
	binary.LittleEndian.PutUint32(b[16:], r.Flags)
	binary.LittleEndian.PutUint32(b[20:], r.Value)
}

// ParseResponse decodes a completion payload: its first ResponseSize
// bytes; what follows (the ring's padding, or anything a host appends) is
// not read. ok is false if it is too short: the host is broken.
func ParseResponse(b []byte) (r Response, ok bool) {
	if len(b) < ResponseSize {
		return Response{}, false
	}
	return Response{
		Status:    Status(binary.LittleEndian.Uint32(b[0:])),
		BlockSize: binary.LittleEndian.Uint32(b[4:]),
		Size:      binary.LittleEndian.Uint64(b[8:]),
		Flags:     binary.LittleEndian.Uint32(b[16:]),
		Value:     binary.LittleEndian.Uint32(b[20:]),
	}, true
}
