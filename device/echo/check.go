package echo

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// Stream packets carry a header and a body:
//
//	offset  size  field
//	0       8     sequence number (little endian), 0 … count-1
//	8       4     CRC-32C of the body followed by the 8 sequence bytes
//	12      4     payload length (header included)
//	16      …     body: a fixed pattern
//
// The checksum covers the sequence number too, so a corrupted sequence
// number is caught as corruption, not counted as another packet. The body
// is the same pattern in every packet, so its CRC is computed once per
// stream on each side: per packet the sender and the Checker each compute
// only the CRC of the 8 sequence bytes on top of it. The Checker compares
// the body with the pattern instead of hashing it, which decides as much
// (a body equal to the pattern has the pattern's CRC) at a fraction of
// the cost, and also catches what a CRC collision would let through.
const (
	// HeaderSize is the smallest stream payload.
	HeaderSize = 16
	offSeq     = 0
	offSum     = 8
	offLen     = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Verdict is a Checker's judgement of one packet.
type Verdict uint8

// Verdicts.
const (
	VerdictOK        Verdict = iota // first arrival of an intact packet
	VerdictDuplicate                // intact, seen before
	VerdictCorrupt                  // wrong length, checksum or sequence number
)

// Packer builds stream packets of one size.
type Packer struct {
	buf     []byte
	bodySum uint32
}

// NewPacker returns a packer of payload-byte packets. payload must be at
// least HeaderSize (the caller's bug otherwise: it panics).
func NewPacker(payload int) *Packer {
	if payload < HeaderSize || payload > 1<<31 {
		panic("echo: stream payload below the header size")
	}
	b := make([]byte, payload)
	fillBody(b[HeaderSize:])
	binary.LittleEndian.PutUint32(b[offLen:], uint32(payload))
	return &Packer{buf: b, bodySum: crc32.Checksum(b[HeaderSize:], castagnoli)}
}

// fillBody writes the fixed body pattern: bytes that differ from their
// neighbours, so that shifted or swapped data shows.
func fillBody(b []byte) {
	for i := range b {
		b[i] = byte(i*131 + i>>8 + 7)
	}
}

// Packet returns packet seq. The slice is the packer's own, overwritten by
// the next call.
func (k *Packer) Packet(seq uint64) []byte { return k.PacketIn(k.buf, seq) }

// Buffers returns n buffers for PacketIn: a burst of packets built at
// once, each in its own buffer.
func (k *Packer) Buffers(n int) [][]byte {
	bufs := make([][]byte, n)
	all := make([]byte, n*len(k.buf))
	for i := range bufs {
		bufs[i] = all[i*len(k.buf) : (i+1)*len(k.buf) : (i+1)*len(k.buf)]
		copy(bufs[i], k.buf)
	}
	return bufs
}

// PacketIn makes b, one of Buffers' buffers, packet seq and returns it.
func (k *Packer) PacketIn(b []byte, seq uint64) []byte {
	binary.LittleEndian.PutUint64(b[offSeq:], seq)
	binary.LittleEndian.PutUint32(b[offSum:], crc32.Update(k.bodySum, castagnoli, b[offSeq:offSeq+8]))
	return b
}

// Checker verifies the packets of one stream of count packets of payload
// bytes: each must arrive intact, once. It is not safe for concurrent use.
type Checker struct {
	count, payload uint64
	body           []byte   // the body every packet carries
	bodySum        uint32   // its CRC-32C
	seen           []uint64 // bitmap of sequence numbers received intact
	// Received counts every packet checked; Unique the intact first
	// arrivals; Duplicated the intact repeats; Corrupted the rest.
	Received, Unique, Duplicated, Corrupted uint64
}

// NewChecker returns a checker for count packets of payload bytes.
func NewChecker(count uint64, payload int) *Checker {
	c := &Checker{count: count, payload: uint64(payload), seen: make([]uint64, (count+63)/64)}
	if payload > HeaderSize {
		c.body = make([]byte, payload-HeaderSize)
		fillBody(c.body)
	}
	c.bodySum = crc32.Checksum(c.body, castagnoli)
	return c
}

// Check judges one received payload. The channel pads payloads to a
// multiple of 8 bytes, so up to 7 bytes beyond the stated length are
// accepted (and ignored).
func (c *Checker) Check(p []byte) Verdict {
	c.Received++
	v := c.judge(p)
	switch v {
	case VerdictOK:
		c.Unique++
	case VerdictDuplicate:
		c.Duplicated++
	default:
		c.Corrupted++
	}
	return v
}

func (c *Checker) judge(p []byte) Verdict {
	if len(p) < HeaderSize {
		return VerdictCorrupt
	}
	n := uint64(binary.LittleEndian.Uint32(p[offLen:]))
	if n != c.payload || uint64(len(p)) < n || uint64(len(p))-n >= 8 {
		return VerdictCorrupt
	}
	p = p[:n]
	if !bytes.Equal(p[HeaderSize:], c.body) {
		return VerdictCorrupt
	}
	// p may be the peer's ring (in-place payloads): the sequence number
	// is read once, and the checksum and the bitmap judge that copy.
	var b [8]byte
	copy(b[:], p[offSeq:offSeq+8])
	seq := binary.LittleEndian.Uint64(b[:])
	sum := crc32.Update(c.bodySum, castagnoli, b[:])
	if sum != binary.LittleEndian.Uint32(p[offSum:]) || seq >= c.count {
		return VerdictCorrupt
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	if c.seen[w]&bit != 0 {
		return VerdictDuplicate
	}
	c.seen[w] |= bit
	return VerdictOK
}

// Lost is the number of packets of the stream not (yet) received intact.
func (c *Checker) Lost() uint64 { return c.count - c.Unique }
