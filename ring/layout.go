package ring

import "fmt"

// ControlSize is the size of the control page that precedes the data area.
const ControlSize = 4096

// Offsets of the control page fields (WIRE.md §1), each a little-endian
// u32. The endpoints of this package are the only code that should need
// them; tools that forge or inspect a control page (chaos tests, dumps)
// use these names rather than restating the layout.
const (
	WriteIndexOffset      = 0x00 // written by the writer: where its next packet goes
	ReadIndexOffset       = 0x04 // written by the reader: where the next unread packet is
	InterruptMaskOffset   = 0x08 // written by the reader: non-zero means "do not signal me"
	PendingSendSizeOffset = 0x0C // written by the writer: bytes it waits for, 0 for none
	FeatureBitsOffset     = 0x40 // set when the ring is formatted
)

// FeaturePendingSendSize is the feature bit (at FeatureBitsOffset) that
// says the ring takes part in the pending send size protocol.
const FeaturePendingSendSize = 1 << 0

// Packet layout constants.
const (
	descriptorSize = 16 // type, data offset, length, flags, transaction id
	typeHeaderSize = 8  // GPA-direct and transfer-page headers
	transferRange  = 8  // {u32 byte count, u32 byte offset}

	// FooterSize is the 8-byte footer after every packet (its start index
	// in the high 32 bits). It is not counted by the descriptor's length,
	// so MaxPacketLen excludes it; PacketLen includes it.
	FooterSize = 8

	// MaxPacketLen is the largest packet a descriptor can describe, without
	// its footer: the u16 length counts 8-byte units (65535 × 8 = 524,280
	// bytes, also the KMCL MTU).
	MaxPacketLen = 0xFFFF * 8
)

// FlagCompletionRequested asks the receiver to answer with a completion
// packet carrying the same transaction id. It is the only defined flag.
const FlagCompletionRequested uint16 = 1

const knownFlags = FlagCompletionRequested

// PacketType is the descriptor's type field.
type PacketType uint16

// The packet types this package reads and writes. NT defines others (for
// example 8, GPADL); a ring carrying them is reported as corrupt rather than
// misread.
const (
	TypeInBand        PacketType = 6
	TypeTransferPages PacketType = 7
	TypeGPADirect     PacketType = 9
	TypeCompletion    PacketType = 11
)

func (t PacketType) known() bool {
	switch t {
	case TypeInBand, TypeTransferPages, TypeGPADirect, TypeCompletion:
		return true
	}
	return false
}

// String names the type as the CLI and errors print it.
func (t PacketType) String() string {
	switch t {
	case TypeInBand:
		return "inband"
	case TypeTransferPages:
		return "transfer-pages"
	case TypeGPADirect:
		return "gpa-direct"
	case TypeCompletion:
		return "completion"
	}
	return fmt.Sprintf("type-%d", uint16(t))
}

// TransferRange is one range of a transfer-page packet: Count bytes at
// Offset in the transfer page set (a receive buffer the peers agreed on).
type TransferRange struct {
	Count  uint32
	Offset uint32
}
