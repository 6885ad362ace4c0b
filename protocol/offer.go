package protocol

import (
	"encoding/hex"
	"strings"
)

// OfferChannelSize is the length of an OfferChannel message: an 8-byte
// header and a 188-byte body.
const OfferChannelSize = 196

// UserDefinedSize is the length of the user-defined area in offers and
// OpenChannel.
const UserDefinedSize = 120

// Message offsets of the OfferChannel fields (body offset + 8).
const (
	offerInterfaceType     = 8   // GUID
	offerInterfaceInstance = 24  // GUID
	offerReserved          = 40  // u32[4], body offsets 32-47
	offerFlags             = 56  // u16
	offerMMIOMegabytes     = 58  // u16
	offerUserDefined       = 60  // u8[120]; a pipe offer's u32 pipe mode is at body 52
	offerSubchannelIndex   = 180 // u16
	offerMMIOOptional      = 182 // u16
	offerChannelID         = 184 // u32
	offerMonitorID         = 188 // u8
	offerMonitorAllocated  = 189 // bit 0; bits 1-7 reserved
	offerDedicated         = 190 // u16, bit 0; bits 1-15 reserved
	offerConnectionID      = 192 // u32
)

// OfferFlags are an offer's u16 channel flags.
type OfferFlags uint16

// Offer flags, as Linux 6.1 names them. With the confidential-channels
// feature negotiated, hosts give 0x2, 0x4 and 0x8 the confidential-VM
// meanings instead (the OfferFlagConfidential* names).
const (
	OfferFlagEnumerateDeviceInterface     OfferFlags = 0x1
	OfferFlagTransferPages                OfferFlags = 0x2 // server supports transfer pages
	OfferFlagGPADLs                       OfferFlags = 0x4 // server supports GPADLs
	OfferFlagNamedPipeMode                OfferFlags = 0x10
	OfferFlagLoopback                     OfferFlags = 0x100
	OfferFlagParent                       OfferFlags = 0x200
	OfferFlagRequestMonitoredNotification OfferFlags = 0x400
	OfferFlagTLNPIProvider                OfferFlags = 0x2000
	OfferFlagConfidentialRing             OfferFlags = 0x2 // ring in encrypted memory
	OfferFlagConfidentialExternalMemory   OfferFlags = 0x4 // GPADLs and GPA direct in encrypted memory
	OfferFlagRequirePinned                OfferFlags = 0x8
)

var offerFlagNames = [...]string{
	0: "enumerate-device-interface", 1: "transfer-pages/confidential-ring",
	2: "gpadls/confidential-external-memory", 3: "require-pinned",
	4: "named-pipe-mode", 8: "loopback", 9: "parent",
	10: "request-monitored-notification", 13: "tlnpi-provider",
}

// String lists the set flags by name, joined with "|". Bits 0x2 and 0x4
// show both of their meanings as "classic/confidential", since which
// applies depends on the negotiated features.
func (f OfferFlags) String() string { return flagString(uint64(f), offerFlagNames[:]) }

// Pipe modes, the u32 at the start of a pipe offer's user-defined area.
const (
	PipeModeByte    = 0
	PipeModeMessage = 4
)

// UserDefined is the 120-byte area an offer or OpenChannel carries for the
// device's own use. It prints and marshals to text as hex.
type UserDefined [UserDefinedSize]byte

// String is the hex of the bytes, trailing zero bytes dropped.
func (u UserDefined) String() string {
	n := len(u)
	for n > 0 && u[n-1] == 0 {
		n--
	}
	return hex.EncodeToString(u[:n])
}

// MarshalText emits the full 240 hex digits.
func (u UserDefined) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(u[:])), nil
}

// UnmarshalText accepts up to 240 hex digits; missing trailing bytes are
// zero.
func (u *UserDefined) UnmarshalText(b []byte) error {
	var v UserDefined
	s := strings.TrimSpace(string(b))
	if len(s) > 2*len(v) {
		return hex.ErrLength
	}
	if _, err := hex.Decode(v[:], []byte(s)); err != nil {
		return err
	}
	*u = v
	return nil
}

// PipeMode is the u32 at the start of the area, which a named-pipe offer
// uses for its mode (PipeModeByte or PipeModeMessage), leaving 116 bytes.
func (u *UserDefined) PipeMode() uint32 { return le.Uint32(u[:4]) }

// SetPipeMode stores mode in the first four bytes.
func (u *UserDefined) SetPipeMode(mode uint32) { le.PutUint32(u[:4], mode) }

// OfferChannel (type 1, host→guest) announces a channel: what device it is
// (interface type), which one (instance), and how to signal it.
//
// The two reserved u64s and the reserved bits beside MonitorAllocated and
// DedicatedInterrupt are written as zero and ignored when read.
type OfferChannel struct {
	InterfaceType         GUID        `json:"interface_type"`
	InterfaceInstance     GUID        `json:"interface_instance"`
	Flags                 OfferFlags  `json:"flags"`
	MMIOMegabytes         uint16      `json:"mmio_megabytes"`
	UserDefined           UserDefined `json:"user_defined"`
	SubchannelIndex       uint16      `json:"subchannel_index"`
	MMIOMegabytesOptional uint16      `json:"mmio_megabytes_optional"`
	ChannelID             uint32      `json:"channel_id"`
	MonitorID             uint8       `json:"monitor_id"` // MonitorIDNone if none
	MonitorAllocated      bool        `json:"monitor_allocated"`
	DedicatedInterrupt    bool        `json:"dedicated_interrupt"`
	ConnectionID          uint32      `json:"connection_id"`
}

// Type is TypeOfferChannel.
func (*OfferChannel) Type() MessageType { return TypeOfferChannel }

// Size is OfferChannelSize.
func (*OfferChannel) Size() int { return OfferChannelSize }

// Append appends the 196 wire bytes.
func (m *OfferChannel) Append(b []byte) []byte {
	b = appendHeader(b, TypeOfferChannel, OfferChannelSize)
	b = append(b, m.InterfaceType[:]...)
	b = append(b, m.InterfaceInstance[:]...)
	b = appendZero(b, offerFlags-offerReserved)
	b = le.AppendUint16(b, uint16(m.Flags))
	b = le.AppendUint16(b, m.MMIOMegabytes)
	b = append(b, m.UserDefined[:]...)
	b = le.AppendUint16(b, m.SubchannelIndex)
	b = le.AppendUint16(b, m.MMIOMegabytesOptional)
	b = le.AppendUint32(b, m.ChannelID)
	b = append(b, m.MonitorID, boolByte(m.MonitorAllocated))
	b = le.AppendUint16(b, uint16(boolByte(m.DedicatedInterrupt)))
	return le.AppendUint32(b, m.ConnectionID)
}

func (m *OfferChannel) unmarshal(b []byte) error {
	if err := checkLen(TypeOfferChannel, b, OfferChannelSize); err != nil {
		return err
	}
	b = b[:OfferChannelSize] // one bounds check for all the reads below
	copy(m.InterfaceType[:], b[offerInterfaceType:])
	copy(m.InterfaceInstance[:], b[offerInterfaceInstance:])
	m.Flags = OfferFlags(le.Uint16(b[offerFlags:]))
	m.MMIOMegabytes = le.Uint16(b[offerMMIOMegabytes:])
	copy(m.UserDefined[:], b[offerUserDefined:])
	m.SubchannelIndex = le.Uint16(b[offerSubchannelIndex:])
	m.MMIOMegabytesOptional = le.Uint16(b[offerMMIOOptional:])
	m.ChannelID = le.Uint32(b[offerChannelID:])
	m.MonitorID = b[offerMonitorID]
	m.MonitorAllocated = b[offerMonitorAllocated]&1 != 0
	m.DedicatedInterrupt = le.Uint16(b[offerDedicated:])&1 != 0
	m.ConnectionID = le.Uint32(b[offerConnectionID:])
	return nil
}

// IsPipe reports whether the offer is for a named pipe, whose user-defined
// area starts with the pipe mode.
func (m *OfferChannel) IsPipe() bool { return m.Flags&OfferFlagNamedPipeMode != 0 }

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
