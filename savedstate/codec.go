package savedstate

import (
	"encoding/binary"
	"fmt"
)

// Encoder builds a record body: little-endian fields appended in order.
// The zero value is ready to use.
type Encoder struct{ b []byte }

// Grow reserves room for n more bytes, so that a body of known size is
// built in one allocation instead of growing as fields are appended.
func (e *Encoder) Grow(n int) *Encoder {
	if n > cap(e.b)-len(e.b) {
		nb := make([]byte, len(e.b), len(e.b)+n)
		copy(nb, e.b)
		e.b = nb
	}
	return e
}

// U8 appends a byte.
func (e *Encoder) U8(v uint8) *Encoder { e.b = append(e.b, v); return e }

// U16 appends a little-endian u16.
func (e *Encoder) U16(v uint16) *Encoder { e.b = binary.LittleEndian.AppendUint16(e.b, v); return e }

// U32 appends a little-endian u32.
func (e *Encoder) U32(v uint32) *Encoder { e.b = binary.LittleEndian.AppendUint32(e.b, v); return e }

// U64 appends a little-endian u64.
func (e *Encoder) U64(v uint64) *Encoder { e.b = binary.LittleEndian.AppendUint64(e.b, v); return e }

// Bool appends a byte, 1 for true.
func (e *Encoder) Bool(v bool) *Encoder {
	if v {
		return e.U8(1)
	}
	return e.U8(0)
}

// Raw appends bytes of a length both sides know (a GUID, a fixed array).
func (e *Encoder) Raw(b []byte) *Encoder { e.b = append(e.b, b...); return e }

// Bytes appends a u32 length and the bytes.
func (e *Encoder) Bytes(b []byte) *Encoder { return e.U32(uint32(len(b))).Raw(b) }

// Body is the encoded body.
func (e *Encoder) Body() []byte { return e.b }

// Decoder reads a record body field by field. Every read is bounds
// checked; the first failure sticks, later reads return zeros, and Err
// reports it, so a decoding function checks once at the end.
type Decoder struct {
	b   []byte
	off int
	err error
}

// NewDecoder reads body.
func NewDecoder(body []byte) *Decoder { return &Decoder{b: body} }

func (d *Decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.off {
		d.err = fmt.Errorf("%w: %s needs %d bytes at offset %d, body has %d", ErrInvalid, what, n, d.off, len(d.b))
		return nil
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s
}

// U8 reads a byte.
func (d *Decoder) U8() uint8 {
	if s := d.take(1, "u8"); s != nil {
		return s[0]
	}
	return 0
}

// U16 reads a little-endian u16.
func (d *Decoder) U16() uint16 {
	if s := d.take(2, "u16"); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

// U32 reads a little-endian u32.
func (d *Decoder) U32() uint32 {
	if s := d.take(4, "u32"); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

// U64 reads a little-endian u64.
func (d *Decoder) U64() uint64 {
	if s := d.take(8, "u64"); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	v := d.U8()
	if v > 1 && d.err == nil {
		d.err = fmt.Errorf("%w: boolean byte %d at offset %d", ErrInvalid, v, d.off-1)
	}
	return v == 1
}

// Raw reads n bytes into a new slice.
func (d *Decoder) Raw(n int) []byte {
	if s := d.take(n, "raw bytes"); s != nil {
		return append([]byte(nil), s...)
	}
	return nil
}

// RawInto fills dst.
func (d *Decoder) RawInto(dst []byte) {
	if s := d.take(len(dst), "raw bytes"); s != nil {
		copy(dst, s)
	}
}

// Bytes reads a u32 length and that many bytes, at most max.
func (d *Decoder) Bytes(max int) []byte {
	n := d.U32()
	if d.err == nil && int64(n) > int64(max) {
		d.err = fmt.Errorf("%w: %d-byte field at offset %d exceeds %d", ErrInvalid, n, d.off-4, max)
		return nil
	}
	return d.Raw(int(n))
}

// Count reads a u32 element count and checks that count elements of at
// least minSize bytes each can still follow, so a hostile count cannot make
// the caller allocate or loop beyond the body.
func (d *Decoder) Count(minSize int) int {
	n := d.U32()
	if d.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if int64(n) > int64(len(d.b)-d.off)/int64(minSize) {
		d.err = fmt.Errorf("%w: count %d at offset %d cannot fit in the %d bytes left", ErrInvalid, n, d.off-4, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

// Err is the first failure, and also fails if bytes are left over: a body
// longer than its kind's layout is as wrong as a shorter one. Before the
// last field is read there are always bytes left, so Err is for the end of
// a body; Failed is what a loop over a body's elements tests.
func (d *Decoder) Err() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.b) {
		return fmt.Errorf("%w: %d bytes left over after offset %d", ErrInvalid, len(d.b)-d.off, d.off)
	}
	return nil
}

// Failed reports whether a read failed or a rule was found broken so far.
// Unlike Err it does not count the bytes still to be read.
func (d *Decoder) Failed() bool { return d.err != nil }

// Fail records a rule the caller found broken, if none failed before. The
// message is formatted as by fmt.Errorf: a %w in format keeps that cause
// beside ErrInvalid for errors.Is.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %w", ErrInvalid, fmt.Errorf(format, args...))
	}
}
