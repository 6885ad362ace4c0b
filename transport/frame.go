package transport

import (
	"encoding/binary"
	"fmt"
)

// MaxMessageSize is the largest control message: the payload of a Hyper-V
// SynIC message.
const MaxMessageSize = 240

// Frame layout (docs/TRANSPORT.md): a 4-byte header, then the body. One
// frame is exactly one datagram.
const (
	headerSize   = 4
	offKind      = 0 // u8
	offFlags     = 1 // u8, must be 0
	offBodyLen   = 2 // u16, must equal datagram length - headerSize
	maxBodySize  = MaxMessageSize
	maxFrameSize = headerSize + maxBodySize

	// Most descriptors one frame may carry; a frame with more is
	// rejected. Receive buffers hold a few more so that an excess is
	// seen (and closed) rather than silently truncated.
	maxFDsPerFrame = 1
	recvFDSlots    = 4
)

type kind uint8

const (
	kindHello   kind = 1
	kindMessage kind = 2
	kindMemory  kind = 3
	kindEvent   kind = 4
)

// Hello body.
const (
	helloSize    = 8
	helloMagic   = 0x54424D56 // "VMBT" as little-endian bytes
	helloVersion = 1
	offMagic     = 0 // u32
	offVersion   = 4 // u16
	offRole      = 6 // u8
	offHelloRsvd = 7 // u8, must be 0
)

// Memory body: u64 size in bytes, equal to the memfd's size.
const memorySize = 8

// Event body.
const (
	eventSize     = 8
	offChannel    = 0 // u32
	offDirection  = 4 // u8
	offEventRsvd  = 5 // 3 bytes, must be 0
	eventRsvdSize = 3
)

// Role is the side of the bus an end of a connection speaks for.
type Role uint8

// The two roles; their values cross the wire in the connection's
// handshake.
const (
	Host  Role = 1 // the end that serves the bus
	Guest Role = 2 // the end that connects to it
)

func (r Role) String() string {
	switch r {
	case Host:
		return "host"
	case Guest:
		return "guest"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// peer is the role on the other end.
func (r Role) peer() Role { return 3 - r }

// Direction names which way an Event signals: ToHost wakes the host (the
// guest signals it after writing the guest→host ring), ToGuest wakes the
// guest.
type Direction uint8

// The two directions; their values cross the wire with each event
// handed over.
const (
	ToHost  Direction = 1 // the guest signals the host
	ToGuest Direction = 2 // the host signals the guest
)

func (d Direction) String() string {
	switch d {
	case ToHost:
		return "to-host"
	case ToGuest:
		return "to-guest"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// frame is a decoded frame. Only the fields of its kind are set; msg
// aliases the buffer it was decoded from.
type frame struct {
	kind    kind
	role    Role      // hello
	version uint16    // hello
	msg     []byte    // message
	size    uint64    // memory
	channel uint32    // event
	dir     Direction // event
}

func frameErr(k uint8, format string, args ...any) error {
	return &FrameError{Kind: k, Reason: fmt.Sprintf(format, args...)}
}

// fdsFor is the number of descriptors a frame of kind k carries.
func fdsFor(k kind) int {
	if k == kindMemory || k == kindEvent {
		return 1
	}
	return 0
}

// decodeFrame checks one received datagram b, which arrived with nfds
// descriptors, against the frame rules and decodes it. It reads b only;
// on error the frame is zero. A hello with the right magic but another
// version is decoded (so the caller can report ErrVersion); everything
// else about it is checked.
func decodeFrame(b []byte, nfds int) (frame, error) {
	if len(b) < headerSize {
		return frame{}, frameErr(0, "%d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	k := b[offKind]
	if b[offFlags] != 0 {
		return frame{}, frameErr(k, "flags %#x, must be 0", b[offFlags])
	}
	body := b[headerSize:]
	if n := int(binary.LittleEndian.Uint16(b[offBodyLen:])); n != len(body) {
		return frame{}, frameErr(k, "header says %d body bytes, datagram has %d", n, len(body))
	}
	switch kind(k) {
	case kindHello, kindMessage, kindMemory, kindEvent:
	default:
		return frame{}, frameErr(k, "unknown frame kind")
	}
	if want := fdsFor(kind(k)); nfds != want {
		return frame{}, frameErr(k, "%d descriptors attached, this kind carries %d", nfds, want)
	}
	f := frame{kind: kind(k)}
	switch f.kind {
	case kindHello:
		if len(body) != helloSize {
			return frame{}, frameErr(k, "hello body of %d bytes, want %d", len(body), helloSize)
		}
		if m := binary.LittleEndian.Uint32(body[offMagic:]); m != helloMagic {
			return frame{}, frameErr(k, "magic %#x, want %#x", m, helloMagic)
		}
		f.version = binary.LittleEndian.Uint16(body[offVersion:])
		f.role = Role(body[offRole])
		if f.role != Host && f.role != Guest {
			return frame{}, frameErr(k, "unknown role %d", body[offRole])
		}
		if body[offHelloRsvd] != 0 {
			return frame{}, frameErr(k, "reserved byte %#x, must be 0", body[offHelloRsvd])
		}
	case kindMessage:
		if len(body) == 0 {
			return frame{}, frameErr(k, "empty control message")
		}
		// Longer bodies cannot reach here: the receive buffer holds one
		// maximal frame and a longer datagram is reported truncated. The
		// check keeps the decoder safe on any input.
		if len(body) > MaxMessageSize {
			return frame{}, frameErr(k, "control message of %d bytes, at most %d", len(body), MaxMessageSize)
		}
		f.msg = body
	case kindMemory:
		if len(body) != memorySize {
			return frame{}, frameErr(k, "memory body of %d bytes, want %d", len(body), memorySize)
		}
		f.size = binary.LittleEndian.Uint64(body)
	case kindEvent:
		if len(body) != eventSize {
			return frame{}, frameErr(k, "event body of %d bytes, want %d", len(body), eventSize)
		}
		f.channel = binary.LittleEndian.Uint32(body[offChannel:])
		f.dir = Direction(body[offDirection])
		if f.dir != ToHost && f.dir != ToGuest {
			return frame{}, frameErr(k, "unknown direction %d", body[offDirection])
		}
		for _, r := range body[offEventRsvd : offEventRsvd+eventRsvdSize] {
			if r != 0 {
				return frame{}, frameErr(k, "reserved bytes not zero")
			}
		}
	}
	return f, nil
}

// appendFrame appends the wire form of f to dst. f must be valid (the
// package builds frames only from checked values).
func appendFrame(dst []byte, f frame) []byte {
	var body int
	switch f.kind {
	case kindHello:
		body = helloSize
	case kindMessage:
		body = len(f.msg)
	case kindMemory:
		body = memorySize
	case kindEvent:
		body = eventSize
	default:
		panic(fmt.Sprintf("transport: appendFrame of kind %d", f.kind))
	}
	dst = append(dst, byte(f.kind), 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(body))
	switch f.kind {
	case kindHello:
		dst = binary.LittleEndian.AppendUint32(dst, helloMagic)
		dst = binary.LittleEndian.AppendUint16(dst, f.version)
		dst = append(dst, byte(f.role), 0)
	case kindMessage:
		dst = append(dst, f.msg...)
	case kindMemory:
		dst = binary.LittleEndian.AppendUint64(dst, f.size)
	case kindEvent:
		dst = binary.LittleEndian.AppendUint32(dst, f.channel)
		dst = append(dst, byte(f.dir), 0, 0, 0)
	}
	return dst
}
