package capture

import "encoding/binary"

// LinkType is the pcapng link type of every interface of a capture:
// LINKTYPE_USER0. No link type is assigned to VMBus; tcpdump.org keeps
// 147–162 for private use, and the dissector in contrib/wireshark
// registers on this one.
const LinkType = 147

// pcapng block types and option codes this package writes or reads.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockEPB = 0x00000006

	byteOrderMagic = 0x1A2B3C4D

	optEnd      = 0
	optUserAppl = 4 // shb_userappl
	optIfName   = 2 // if_name
	optTsResol  = 9 // if_tsresol

	// epbFixed is an Enhanced Packet Block without its data: type,
	// length, interface, two timestamp words, two lengths, trailing
	// length.
	epbFixed = 32
	// maxBlock bounds the blocks a Reader takes: far above anything the
	// Writer writes (a record at the largest snap length), far below
	// what would let a hostile file make it allocate without bound.
	maxBlock = 16 << 20
)

var le = binary.LittleEndian

func pad4(n int) int { return (n + 3) &^ 3 }

// appendOption appends a pcapng option, its value padded to 4 bytes.
func appendOption(b []byte, code uint16, val []byte) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	for i := len(val); i%4 != 0; i++ {
		b = append(b, 0)
	}
	return b
}

// appendBlock frames body as a block of type typ.
func appendBlock(b []byte, typ uint32, body []byte) []byte {
	n := uint32(12 + len(body))
	b = le.AppendUint32(b, typ)
	b = le.AppendUint32(b, n)
	b = append(b, body...)
	return le.AppendUint32(b, n)
}

// sectionHeader is a Section Header Block of unknown section length.
func sectionHeader() []byte {
	body := le.AppendUint32(nil, byteOrderMagic)
	body = le.AppendUint16(body, 1) // major
	body = le.AppendUint16(body, 0) // minor
	body = le.AppendUint64(body, ^uint64(0))
	body = appendOption(body, optUserAppl, []byte("govmbus"))
	body = appendOption(body, optEnd, nil)
	return appendBlock(nil, blockSHB, body)
}

// interfaceBlock is an Interface Description Block named name, with
// nanosecond timestamps.
func interfaceBlock(name string, snap uint32) []byte {
	body := le.AppendUint16(nil, LinkType)
	body = le.AppendUint16(body, 0)
	body = le.AppendUint32(body, snap)
	body = appendOption(body, optIfName, []byte(name))
	body = appendOption(body, optTsResol, []byte{9})
	body = appendOption(body, optEnd, nil)
	return appendBlock(nil, blockIDB, body)
}
