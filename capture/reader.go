package capture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrFormat is wrapped by the errors of a file that is not a capture this
// package reads.
var ErrFormat = errors.New("capture: not a govmbus pcapng capture")

// Interface is one interface of a capture's section.
type Interface struct {
	Name    string // "guest N", or "host"
	SnapLen uint32
	tsUnit  uint64 // nanoseconds per timestamp unit
}

// Record is one record read back.
type Record struct {
	Section   int // 0 for the first section; a servicing's successor starts the next
	Interface int // in its section
	IfName    string
	Time      time.Time
	RecordHeader
	// Data are the record's bytes after its header, OrigLen long unless
	// the record was truncated. Valid until the next call of Next.
	Data []byte
}

// Reader reads a capture back: the blocks a Writer writes, in any number
// of sections; other block types are skipped. The file is untrusted: a
// block that does not parse is an error wrapping ErrFormat or ErrRecord,
// and the Reader stops there.
type Reader struct {
	r       *bufio.Reader
	section int
	ifaces  []Interface
	buf     []byte
	err     error
}

// NewReader reads a capture from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReader(r), section: -1}
}

// Next returns the next record, or io.EOF after the last whole block.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	for {
		typ, body, err := r.block()
		if err == io.EOF && r.section < 0 {
			// Even a capture with no record starts a section.
			return Record{}, fmt.Errorf("%w: no section header (an empty file)", ErrFormat)
		}
		if err != nil {
			return Record{}, err
		}
		switch typ {
		case blockSHB:
			if err := r.sectionHeader(body); err != nil {
				return Record{}, err
			}
		case blockIDB:
			if err := r.interfaceBlock(body); err != nil {
				return Record{}, err
			}
		case blockEPB:
			return r.packetBlock(body)
		}
	}
}

// block reads one whole block and returns its type and its body (between
// the length words).
func (r *Reader) block() (uint32, []byte, error) {
	var head [8]byte
	if _, err := io.ReadFull(r.r, head[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("%w: truncated, a block cut short: %v", ErrFormat, err)
	}
	typ, n := le.Uint32(head[0:]), le.Uint32(head[4:])
	if r.section < 0 && typ != blockSHB {
		return 0, nil, fmt.Errorf("%w: starts with block type %#x", ErrFormat, typ)
	}
	if typ == blockSHB {
		// The byte order is the section's: only little-endian ones
		// are read, and their length word is little-endian too.
		var bom [4]byte
		if _, err := io.ReadFull(r.r, bom[:]); err != nil {
			return 0, nil, fmt.Errorf("%w: a section header cut short", ErrFormat)
		}
		if le.Uint32(bom[:]) != byteOrderMagic {
			return 0, nil, fmt.Errorf("%w: byte-order magic %x (big-endian or not pcapng)", ErrFormat, bom)
		}
		if n < 28 || n > maxBlock || n%4 != 0 {
			return 0, nil, fmt.Errorf("%w: section header of %d bytes", ErrFormat, n)
		}
		body, err := r.rest(n, 12)
		if err != nil {
			return 0, nil, err
		}
		return typ, append(append(r.buf[:0:0], bom[:]...), body...), nil
	}
	if n < 12 || n > maxBlock || n%4 != 0 {
		return 0, nil, fmt.Errorf("%w: block type %#x of %d bytes", ErrFormat, typ, n)
	}
	body, err := r.rest(n, 8)
	return typ, body, err
}

// rest reads the remainder of a block of n bytes, read bytes so far: its
// body, then the trailing length, which must repeat n.
func (r *Reader) rest(n uint32, read uint32) ([]byte, error) {
	left := int(n - read)
	if cap(r.buf) < left {
		r.buf = make([]byte, left)
	}
	b := r.buf[:left]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, fmt.Errorf("%w: truncated, a block of %d bytes cut short", ErrFormat, n)
	}
	if le.Uint32(b[left-4:]) != n {
		return nil, fmt.Errorf("%w: trailing length %d, leading %d", ErrFormat, le.Uint32(b[left-4:]), n)
	}
	return b[:left-4], nil
}

func (r *Reader) sectionHeader(body []byte) error {
	// body: magic, major, minor, section length, options.
	if len(body) < 16 {
		return fmt.Errorf("%w: section header body of %d bytes", ErrFormat, len(body))
	}
	if major := le.Uint16(body[4:]); major != 1 {
		return fmt.Errorf("%w: pcapng version %d", ErrFormat, major)
	}
	r.section++
	r.ifaces = r.ifaces[:0]
	return nil
}

func (r *Reader) interfaceBlock(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("%w: interface block body of %d bytes", ErrFormat, len(body))
	}
	if lt := le.Uint16(body[0:]); lt != LinkType {
		return fmt.Errorf("%w: interface of link type %d", ErrFormat, lt)
	}
	if len(r.ifaces) >= 1<<16 {
		return fmt.Errorf("%w: more than %d interfaces", ErrFormat, 1<<16)
	}
	in := Interface{SnapLen: le.Uint32(body[4:]), tsUnit: 1000} // pcapng's default: microseconds
	opts := body[8:]
	for len(opts) >= 4 {
		code, n := le.Uint16(opts[0:]), int(le.Uint16(opts[2:]))
		if code == optEnd {
			break
		}
		if 4+pad4(n) > len(opts) {
			return fmt.Errorf("%w: interface option %d of %d bytes past its block", ErrFormat, code, n)
		}
		val := opts[4 : 4+n]
		switch code {
		case optIfName:
			in.Name = string(val)
		case optTsResol:
			if n != 1 || val[0]&0x80 != 0 || val[0] > 9 {
				return fmt.Errorf("%w: if_tsresol %x", ErrFormat, val)
			}
			in.tsUnit = 1
			for i := val[0]; i < 9; i++ {
				in.tsUnit *= 10
			}
		}
		opts = opts[4+pad4(n):]
	}
	r.ifaces = append(r.ifaces, in)
	return nil
}

func (r *Reader) packetBlock(body []byte) (Record, error) {
	if len(body) < epbFixed-12 {
		return Record{}, fmt.Errorf("%w: packet block body of %d bytes", ErrFormat, len(body))
	}
	id := le.Uint32(body[0:])
	if uint64(id) >= uint64(len(r.ifaces)) {
		return Record{}, fmt.Errorf("%w: packet on interface %d of %d", ErrFormat, id, len(r.ifaces))
	}
	in := r.ifaces[id]
	ts := uint64(le.Uint32(body[4:]))<<32 | uint64(le.Uint32(body[8:]))
	capLen, origLen := le.Uint32(body[12:]), le.Uint32(body[16:])
	data := body[20:]
	if uint64(capLen) > uint64(len(data)) || capLen > origLen {
		return Record{}, fmt.Errorf("%w: captured length %d (block has %d, original %d)", ErrFormat, capLen, len(data), origLen)
	}
	h, rest, err := ParseRecord(data[:capLen])
	if err != nil {
		return Record{}, err
	}
	if uint64(origLen) != RecordHeaderSize+uint64(h.OrigLen) {
		return Record{}, fmt.Errorf("%w: original length %d, the record says %d", ErrRecord, origLen, RecordHeaderSize+uint64(h.OrigLen))
	}
	ns := ts
	if in.tsUnit > 1 {
		ns = ts * in.tsUnit // wraps for absurd stamps; a time, never an index
	}
	return Record{
		Section:      r.section,
		Interface:    int(id),
		IfName:       in.Name,
		Time:         time.Unix(0, int64(ns)),
		RecordHeader: h,
		Data:         rest,
	}, nil
}

// CountRecords counts the records of the capture file at path, every
// section's: what the Writers that wrote it counted in their Stats, added
// up.
func CountRecords(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	r := NewReader(f)
	var n uint64
	for {
		_, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}
