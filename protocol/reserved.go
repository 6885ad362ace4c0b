package protocol

// Reserved channels are channels the guest opens without an offer, on a
// VP and SINT it names itself (Windows uses them for kernel debugging).
// Layouts as OpenVMM defines them; WIRE.md gives only the type numbers.

// Sizes of the reserved-channel messages, header included.
const (
	OpenReservedChannelSize   = 28
	CloseReservedChannelSize  = 20
	CloseReservedResponseSize = 12
)

// OpenReservedChannel (type 18, guest→host, from 4.0) opens a reserved
// channel: {u32 channel id, u32 target VP, u32 target SINT, u32 ring GPADL
// id, u32 downstream ring page offset}.
type OpenReservedChannel struct {
	ChannelID                uint32 `json:"channel_id"`
	TargetVP                 uint32 `json:"target_vp"`
	TargetSINT               uint32 `json:"target_sint"`
	RingGpadlID              uint32 `json:"ring_gpadl_id"`
	DownstreamRingPageOffset uint32 `json:"downstream_ring_page_offset"`
}

// Type is TypeOpenReservedChannel.
func (*OpenReservedChannel) Type() MessageType { return TypeOpenReservedChannel }

// Size is OpenReservedChannelSize.
func (*OpenReservedChannel) Size() int { return OpenReservedChannelSize }

// Append appends the 28 wire bytes.
func (m *OpenReservedChannel) Append(b []byte) []byte {
	b = appendHeader(b, TypeOpenReservedChannel, OpenReservedChannelSize)
	b = le.AppendUint32(b, m.ChannelID)
	b = le.AppendUint32(b, m.TargetVP)
	b = le.AppendUint32(b, m.TargetSINT)
	b = le.AppendUint32(b, m.RingGpadlID)
	return le.AppendUint32(b, m.DownstreamRingPageOffset)
}

func (m *OpenReservedChannel) unmarshal(b []byte) error {
	if err := checkLen(TypeOpenReservedChannel, b, OpenReservedChannelSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.TargetVP = le.Uint32(b[secondFieldOffset:])
	m.TargetSINT = le.Uint32(b[thirdFieldOffset:])
	m.RingGpadlID = le.Uint32(b[fourthFieldOffset:])
	m.DownstreamRingPageOffset = le.Uint32(b[fifthFieldOffset:])
	return nil
}

// CloseReservedChannel (type 19, guest→host) closes a reserved channel and
// names where the response goes: {u32 channel id, u32 target VP, u32
// target SINT}.
type CloseReservedChannel struct {
	ChannelID  uint32 `json:"channel_id"`
	TargetVP   uint32 `json:"target_vp"`
	TargetSINT uint32 `json:"target_sint"`
}

// Type is TypeCloseReservedChannel.
func (*CloseReservedChannel) Type() MessageType { return TypeCloseReservedChannel }

// Size is CloseReservedChannelSize.
func (*CloseReservedChannel) Size() int { return CloseReservedChannelSize }

// Append appends the 20 wire bytes.
func (m *CloseReservedChannel) Append(b []byte) []byte {
	b = appendHeader(b, TypeCloseReservedChannel, CloseReservedChannelSize)
	b = le.AppendUint32(b, m.ChannelID)
	b = le.AppendUint32(b, m.TargetVP)
	return le.AppendUint32(b, m.TargetSINT)
}

func (m *CloseReservedChannel) unmarshal(b []byte) error {
	if err := checkLen(TypeCloseReservedChannel, b, CloseReservedChannelSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.TargetVP = le.Uint32(b[secondFieldOffset:])
	m.TargetSINT = le.Uint32(b[thirdFieldOffset:])
	return nil
}

// CloseReservedResponse (type 20, host→guest) confirms CloseReservedChannel:
// {u32 channel id}.
type CloseReservedResponse struct {
	ChannelID uint32 `json:"channel_id"`
}

// Type is TypeCloseReservedResponse.
func (*CloseReservedResponse) Type() MessageType { return TypeCloseReservedResponse }

// Size is CloseReservedResponseSize.
func (*CloseReservedResponse) Size() int { return CloseReservedResponseSize }

// Append appends the 12 wire bytes.
func (m *CloseReservedResponse) Append(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, TypeCloseReservedResponse, CloseReservedResponseSize), m.ChannelID)
}

func (m *CloseReservedResponse) unmarshal(b []byte) error {
	if err := checkLen(TypeCloseReservedResponse, b, CloseReservedResponseSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	return nil
}
