package ring

import "fmt"

// ControlSize is the size of the control page that precedes the data area.
const ControlSize = 4096

// Offsets of the control page fields (WIRE.md §1).
const (
	offWriteIndex     = 0x00
	offReadIndex      = 0x04
	offInterruptMask  = 0x08
	offPendingSend    = 0x0C
	offFeatureBits    = 0x40
	featPendingSendSz = 1 << 0
)

// Packet layout constants.
const (
	descriptorSize = 16 // type, data offset, length, flags, transaction id
	footerSize     = 8  // u64 (start index << 32) after every packet
	typeHeaderSize = 8  // GPA-direct and transfer-page headers
	transferRange  = 8  // {u32 byte count, u32 byte offset}

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

func align8(n int) int { return (n + 7) &^ 7 }
