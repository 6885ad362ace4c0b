package ring

import (
	"math"

	"github.com/govmbus/govmbus/gpa"
)

// The sizes a packet takes in the ring, for the layers above that must
// size a send, a window or a ring before they write. They are total
// functions: lengths may come from a peer, so a negative length or a sum
// past math.MaxInt gives math.MaxInt, a size no ring holds, rather than a
// wrapped one that would pass a bounds check.

// PayloadLen is the space n payload bytes take in the ring: n padded to a
// multiple of 8, as a reader's Packet.PayloadLen counts it.
func PayloadLen(n int) int {
	if n < 0 || n > math.MaxInt-7 {
		return math.MaxInt
	}
	return (n + 7) &^ 7
}

// PacketLen is the space a packet with a type header of headerLen bytes
// and payloadLen payload bytes takes in the ring: the descriptor, the
// header, the payload padded to 8 and the footer, as a reader's
// Packet.Len counts it. A writer needs this much free space and then some
// (a ring is never filled to the last byte); without the footer it is the
// length the descriptor describes, at most MaxPacketLen.
func PacketLen(headerLen, payloadLen int) int {
	const fixed = descriptorSize + FooterSize
	if headerLen < 0 || headerLen > math.MaxInt-fixed {
		return math.MaxInt
	}
	p := PayloadLen(payloadLen) // math.MaxInt for a bad length, caught below
	if p > math.MaxInt-fixed-headerLen {
		return math.MaxInt
	}
	return fixed + headerLen + p
}

// PacketsFit is how many in-band packets of payloadLen bytes an empty ring
// with a data area of dataSize bytes holds at once: the window a sender
// can keep in flight without ever finding the ring full. It is 0 when not
// even one fits, or when such a packet can never be written.
func PacketsFit(dataSize, payloadLen int) int {
	n := PacketLen(0, payloadLen)
	if dataSize <= 0 || n-FooterSize > MaxPacketLen {
		return 0
	}
	// A ring keeps at least one byte free, so k packets fit while k × n
	// stays below the size.
	return (dataSize - 1) / n
}

// GPADirectHeaderLen is the length of the type header of a GPA-direct
// packet carrying ranges: the reserved word and count, then the ranges.
func GPADirectHeaderLen(ranges []gpa.Range) int {
	return typeHeaderSize + gpa.EncodedLenOf(ranges)
}

// HeaderLen is the length of the type header Write builds for p: none for
// in-band packets and completions. PacketLen(p.HeaderLen(), n) is then the
// space p with n payload bytes takes.
func (p *OutPacket) HeaderLen() int {
	switch p.Type {
	case TypeGPADirect:
		return GPADirectHeaderLen(p.Ranges)
	case TypeTransferPages:
		return typeHeaderSize + transferRange*len(p.TransferRanges)
	}
	return 0
}
