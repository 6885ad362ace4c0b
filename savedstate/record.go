package savedstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Format constants.
const (
	Magic         = 0x53424D56 // "VMBS" in little-endian byte order
	FormatVersion = 1
	HeaderSize    = 32

	// MaxBody is the largest record body. The biggest records hold one
	// packet's state; 1 MiB is twice the KMCL MTU.
	MaxBody = 1 << 20
)

// Kind says what a record holds. Kinds 0xFF00 and above belong to this
// package; the layers that save state number their own below that.
type Kind uint16

// Kinds this package writes itself.
const (
	KindBegin Kind = 0xFF01
	KindEnd   Kind = 0xFF02
)

// Flags of a record.
const (
	// FlagCritical marks a record that a reader must understand: a reader
	// that does not know its kind rejects the whole state. Records
	// without it may be skipped by a reader that does not know them, which
	// is how a newer release can add optional state.
	FlagCritical uint32 = 1
)

// Scope says whose state a save holds.
type Scope uint16

// Scopes.
const (
	ScopeChannel Scope = 1 // one KMCL server channel
	ScopeBus     Scope = 2 // the host's bus: one guest connection
	ScopeHost    Scope = 3 // a servicing host: devices, and per guest its bus and channels
)

func (s Scope) String() string {
	switch s {
	case ScopeChannel:
		return "channel"
	case ScopeBus:
		return "bus"
	case ScopeHost:
		return "host"
	}
	return fmt.Sprintf("scope-%d", uint16(s))
}

// Record is one record's kind, flags and body.
type Record struct {
	Kind  Kind
	Flags uint32
	Body  []byte
}

// Critical reports whether readers must understand the record.
func (r Record) Critical() bool { return r.Flags&FlagCritical != 0 }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrInvalid is the sentinel for every saved state that breaks a rule of
// the format; the concrete error is an *Error.
var ErrInvalid = errors.New("invalid saved state")

// Error names where a saved state broke a rule.
type Error struct {
	Offset int    // byte offset in the buffer given to the call, -1 if none
	Seq    int    // sequence number of the record, -1 if unknown
	Rule   string // the rule broken
}

func (e *Error) Error() string {
	s := "invalid saved state"
	if e.Seq >= 0 {
		s += fmt.Sprintf(" (record %d", e.Seq)
		if e.Offset >= 0 {
			s += fmt.Sprintf(" at offset %d", e.Offset)
		}
		s += ")"
	} else if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	return s + ": " + e.Rule
}

// Is makes errors.Is(err, ErrInvalid) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func invalid(off, seq int, format string, args ...any) error {
	return &Error{Offset: off, Seq: seq, Rule: fmt.Sprintf(format, args...)}
}

func pad8(n int) int { return (n + 7) &^ 7 }

// encodedLen is a record's size on the wire.
func encodedLen(bodyLen int) int { return HeaderSize + pad8(bodyLen) }

// appendRecord appends one encoded record. The header is built in b
// itself: a header array of its own would escape to the heap through the
// checksum's assembly, an allocation per record.
func appendRecord(b []byte, kind Kind, flags uint32, seq uint32, saveID uint64, body []byte) []byte {
	start := len(b)
	var zero [HeaderSize]byte
	b = append(b, zero[:]...)
	h := b[start:]
	le := binary.LittleEndian
	le.PutUint32(h[0:], Magic)
	le.PutUint16(h[4:], FormatVersion)
	le.PutUint16(h[6:], uint16(kind))
	le.PutUint32(h[8:], uint32(len(body)))
	le.PutUint32(h[12:], seq)
	le.PutUint64(h[16:], saveID)
	le.PutUint32(h[24:], flags)
	crc := crc32.Update(0, castagnoli, h[:HeaderSize])
	crc = crc32.Update(crc, castagnoli, body)
	le.PutUint32(h[28:], crc)
	b = append(b, body...)
	return append(b, zero[:pad8(len(body))-len(body)]...)
}

// header is a decoded, checked record header.
type header struct {
	kind   Kind
	length int
	seq    uint32
	saveID uint64
	flags  uint32
}

// parseRecord decodes the record at the start of b, checking everything
// that can be checked without context, and returns it with its size.
// off is b's offset in the caller's buffer, for errors.
func parseRecord(b []byte, off int) (header, []byte, int, error) {
	le := binary.LittleEndian
	if len(b) < HeaderSize {
		return header{}, nil, 0, invalid(off, -1, "%d bytes left, a record header needs %d", len(b), HeaderSize)
	}
	h := header{
		kind:   Kind(le.Uint16(b[6:])),
		seq:    le.Uint32(b[12:]),
		saveID: le.Uint64(b[16:]),
		flags:  le.Uint32(b[24:]),
	}
	seq := int(h.seq)
	if m := le.Uint32(b[0:]); m != Magic {
		return header{}, nil, 0, invalid(off, -1, "magic %#08x, want %#08x", m, Magic)
	}
	if v := le.Uint16(b[4:]); v != FormatVersion {
		return header{}, nil, 0, invalid(off, seq, "format version %d, this release reads %d", v, FormatVersion)
	}
	n := le.Uint32(b[8:])
	if n > MaxBody {
		return header{}, nil, 0, invalid(off, seq, "body of %d bytes exceeds the %d-byte limit", n, MaxBody)
	}
	h.length = int(n)
	size := encodedLen(h.length)
	if len(b) < size {
		return header{}, nil, 0, invalid(off, seq, "record of %d bytes, the buffer ends after %d", size, len(b))
	}
	if h.flags&^FlagCritical != 0 {
		return header{}, nil, 0, invalid(off, seq, "unknown flags %#x", h.flags)
	}
	body := b[HeaderSize : HeaderSize+h.length]
	var hz [HeaderSize]byte
	copy(hz[:], b[:HeaderSize])
	le.PutUint32(hz[28:], 0)
	crc := crc32.Update(0, castagnoli, hz[:])
	crc = crc32.Update(crc, castagnoli, body)
	if want := le.Uint32(b[28:]); crc != want {
		return header{}, nil, 0, invalid(off, seq, "checksum %#08x, record says %#08x", crc, want)
	}
	for _, p := range b[HeaderSize+h.length : size] {
		if p != 0 {
			return header{}, nil, 0, invalid(off, seq, "non-zero padding")
		}
	}
	return h, body, size, nil
}
