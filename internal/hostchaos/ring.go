package hostchaos

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/govmbus/govmbus/ring"
)

// Ring abuse writes into the ring the guest reads (host→guest), through
// the relay's own mapping of its pages, while the real host writes there
// too: the guest must judge every index and descriptor it finds there.

// Packet descriptor fields (docs/WIRE.md): type, data offset and length
// in units of 8 bytes, flags, transaction id.
const (
	descSize   = 16
	footerSize = 8
)

// abuseRing does one kind of ring abuse in region (the control page and
// the data of a host→guest ring). It reports whether it wrote anything:
// a ring too full for the packet is left alone.
func abuseRing(kind string, region []byte, rng *rand.Rand) bool {
	if len(region) < 2*ring.ControlSize {
		return false
	}
	data := region[ring.ControlSize:]
	size := uint32(len(data))
	w := index(region, ring.WriteIndexOffset).Load() % size &^ 7
	r := index(region, ring.ReadIndexOffset).Load() % size &^ 7
	used := (w + size - r) % size
	free := size - used - footerSize
	switch kind {
	case kRingIndexPastEnd:
		index(region, ring.WriteIndexOffset).Store(size + 8*(1+rng.Uint32N(1<<16)))
		return true
	case kRingIndexUnaligned:
		index(region, ring.WriteIndexOffset).Store((w + 1 + rng.Uint32N(7)) % size)
		return true
	}
	var pkt []byte
	switch kind {
	case kRingLengthLie:
		pkt = packet(ring.TypeInBand, 2, 8+rng.IntN(56), rng)
		switch rng.IntN(3) {
		case 0: // longer than the ring
			binary.LittleEndian.PutUint16(pkt[4:], uint16(size/8+1+rng.Uint32N(1000)))
		case 1: // data offset past the length
			binary.LittleEndian.PutUint16(pkt[2:], binary.LittleEndian.Uint16(pkt[4:])+1+uint16(rng.IntN(100)))
		default: // data offset inside the descriptor
			binary.LittleEndian.PutUint16(pkt[2:], uint16(rng.IntN(2)))
		}
	case kRingUnknownType:
		t := ring.PacketType(rng.Uint32N(1 << 16))
		for t == ring.TypeInBand || t == ring.TypeTransferPages || t == ring.TypeGPADirect || t == ring.TypeCompletion {
			t++
		}
		pkt = packet(t, 2, 8+rng.IntN(56), rng)
	case kRingCompletionUnsent:
		pkt = packet(ring.TypeCompletion, 2, 8+rng.IntN(56), rng)
	case kRingReplay:
		pkt = lastPacket(data, w)
		if pkt == nil {
			return false
		}
	case kRingXferBadRange:
		pkt = xferPacket(rng)
	case kRingOversized:
		n := min(int(free)-descSize-footerSize-8, 64<<10)
		if n < 4096 {
			return false
		}
		pkt = packet(ring.TypeInBand, 2, n&^7, rng)
	default:
		return false
	}
	if uint32(len(pkt))+footerSize > free {
		return false
	}
	put(data, w, pkt)
	var foot [footerSize]byte
	binary.LittleEndian.PutUint64(foot[:], uint64(w)<<32)
	put(data, (w+uint32(len(pkt)))%size, foot[:])
	index(region, ring.WriteIndexOffset).Store((w + uint32(len(pkt)) + footerSize) % size)
	return true
}

// packet is a descriptor of type t with its data at offset8 (in 8-byte
// units) and n random payload bytes (n a multiple of 8), a random
// transaction id and, now and then, completion requested.
func packet(t ring.PacketType, offset8 int, n int, rng *rand.Rand) []byte {
	n &^= 7
	b := make([]byte, offset8*8+n)
	binary.LittleEndian.PutUint16(b[0:], uint16(t))
	binary.LittleEndian.PutUint16(b[2:], uint16(offset8))
	binary.LittleEndian.PutUint16(b[4:], uint16(len(b)/8))
	binary.LittleEndian.PutUint16(b[6:], uint16(rng.IntN(2)))
	binary.LittleEndian.PutUint64(b[8:], rng.Uint64())
	for i := offset8 * 8; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// xferPacket is a transfer-page packet whose ranges lie: past any
// buffer, overflowing, or more announced than present.
func xferPacket(rng *rand.Rand) []byte {
	nr := 1 + rng.IntN(4)
	hdr := descSize + 8
	b := make([]byte, hdr+8*nr)
	binary.LittleEndian.PutUint16(b[0:], uint16(ring.TypeTransferPages))
	binary.LittleEndian.PutUint16(b[2:], uint16(len(b)/8))
	binary.LittleEndian.PutUint16(b[4:], uint16(len(b)/8))
	binary.LittleEndian.PutUint64(b[8:], rng.Uint64())
	binary.LittleEndian.PutUint16(b[16:], uint16(rng.IntN(3))) // transfer page set id
	count := uint32(nr)
	if rng.IntN(3) == 0 {
		count += 1 + rng.Uint32N(1<<20)
	}
	binary.LittleEndian.PutUint32(b[20:], count)
	for i := range nr {
		p := b[hdr+8*i:]
		switch rng.IntN(3) {
		case 0:
			binary.LittleEndian.PutUint32(p, rng.Uint32())
			binary.LittleEndian.PutUint32(p[4:], rng.Uint32())
		case 1:
			binary.LittleEndian.PutUint32(p, 0xFFFFFFF0)
			binary.LittleEndian.PutUint32(p[4:], 0x20)
		default:
			binary.LittleEndian.PutUint32(p, 1+rng.Uint32N(4096))
			binary.LittleEndian.PutUint32(p[4:], 1<<30+rng.Uint32N(1<<20))
		}
	}
	return b
}

// lastPacket copies the packet before write index w, found through its
// footer, or nil if the footer points nowhere sensible.
func lastPacket(data []byte, w uint32) []byte {
	size := uint32(len(data))
	var foot [footerSize]byte
	get(data, (w+size-footerSize)%size, foot[:])
	start := uint32(binary.LittleEndian.Uint64(foot[:]) >> 32)
	if start >= size || start%8 != 0 {
		return nil
	}
	n := (w + size - footerSize - start) % size
	if n < descSize || n > size/2 {
		return nil
	}
	b := make([]byte, n)
	get(data, start, b)
	return b
}

// put copies b into the ring's data at off, wrapping.
func put(data []byte, off uint32, b []byte) {
	n := copy(data[off:], b)
	copy(data, b[n:])
}

// get copies from the ring's data at off into b, wrapping.
func get(data []byte, off uint32, b []byte) {
	n := copy(b, data[off:])
	copy(b[n:], data)
}
