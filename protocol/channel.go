package protocol

// Messages that open, close, retarget and retire one channel.

// Sizes of the channel messages, header included.
const (
	RescindChannelOfferSize   = 12
	OpenChannelSize           = 148 // the form every version accepts; Linux sends only this
	OpenChannelExtendedSize   = 156 // adds connection id, event flag and flags (Copper)
	OpenChannelResultSize     = 20
	CloseChannelSize          = 12
	RelIDReleasedSize         = 12
	ModifyChannelSize         = 16
	ModifyChannelResponseSize = 16
)

// Message offsets of the OpenChannel fields.
const (
	openChannelID      = 8
	openOpenID         = 12
	openRingGpadlID    = 16
	openTargetVP       = 20
	openDownstreamPage = 24
	openUserData       = 28  // u8[120]
	openConnectionID   = 148 // extended form only
	openEventFlag      = 152 // u16
	openFlags          = 154 // u16
	channelIDOffset    = 8   // the first body field of most channel messages
	secondFieldOffset  = 12
	thirdFieldOffset   = 16
	fourthFieldOffset  = 20
	fifthFieldOffset   = 24
)

// RescindChannelOffer (type 2, host→guest) withdraws an offer; the guest
// answers RelIDReleased once it no longer uses the channel id.
type RescindChannelOffer struct {
	ChannelID uint32 `json:"channel_id"`
}

// Type is TypeRescindChannelOffer.
func (*RescindChannelOffer) Type() MessageType { return TypeRescindChannelOffer }

// Size is RescindChannelOfferSize.
func (*RescindChannelOffer) Size() int { return RescindChannelOfferSize }

// Append appends the 12 wire bytes.
func (m *RescindChannelOffer) Append(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, TypeRescindChannelOffer, RescindChannelOfferSize), m.ChannelID)
}

func (m *RescindChannelOffer) unmarshal(b []byte) error {
	if err := checkLen(TypeRescindChannelOffer, b, RescindChannelOfferSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	return nil
}

// OpenChannelFlags are the u16 flags of the extended OpenChannel.
type OpenChannelFlags uint16

// OpenFlagRedirectInterrupt sends the channel's host→guest interrupt to the
// redirected VTL and SINT (needs FeatureInterruptRedirection).
const OpenFlagRedirectInterrupt OpenChannelFlags = 0x1

// String names the set flags.
func (f OpenChannelFlags) String() string {
	return flagString(uint64(f), []string{"redirect-interrupt"})
}

// OpenChannel (type 5, guest→host) opens an offered channel on a ring
// GPADL. The ring GPADL's pages [0, DownstreamRingPageOffset) are the
// guest→host ring, the rest the host→guest ring.
//
// Extended selects the 156-byte form with ConnectionID, EventFlag and
// Flags, which a Copper guest sends when it negotiated
// FeatureGuestSpecifiedSignalParams or FeatureInterruptRedirection; a
// server should reject it otherwise. The three fields are not encoded when
// Extended is false.
type OpenChannel struct {
	ChannelID                uint32           `json:"channel_id"`
	OpenID                   uint32           `json:"open_id"` // echoed in the result; Linux sets it to the channel id
	RingGpadlID              uint32           `json:"ring_gpadl_id"`
	TargetVP                 uint32           `json:"target_vp"` // VPIndexNoInterrupts for none
	DownstreamRingPageOffset uint32           `json:"downstream_ring_page_offset"`
	UserData                 UserDefined      `json:"user_data"`
	Extended                 bool             `json:"extended"`
	ConnectionID             uint32           `json:"connection_id"`
	EventFlag                uint16           `json:"event_flag"`
	Flags                    OpenChannelFlags `json:"flags"`
}

// Type is TypeOpenChannel.
func (*OpenChannel) Type() MessageType { return TypeOpenChannel }

// Size is OpenChannelSize, or OpenChannelExtendedSize if Extended.
func (m *OpenChannel) Size() int {
	if m.Extended {
		return OpenChannelExtendedSize
	}
	return OpenChannelSize
}

// Append appends the 148 or 156 wire bytes.
func (m *OpenChannel) Append(b []byte) []byte {
	b = appendHeader(b, TypeOpenChannel, m.Size())
	b = le.AppendUint32(b, m.ChannelID)
	b = le.AppendUint32(b, m.OpenID)
	b = le.AppendUint32(b, m.RingGpadlID)
	b = le.AppendUint32(b, m.TargetVP)
	b = le.AppendUint32(b, m.DownstreamRingPageOffset)
	b = append(b, m.UserData[:]...)
	if m.Extended {
		b = le.AppendUint32(b, m.ConnectionID)
		b = le.AppendUint16(b, m.EventFlag)
		b = le.AppendUint16(b, uint16(m.Flags))
	}
	return b
}

func (m *OpenChannel) unmarshal(b []byte) error {
	switch len(b) {
	case OpenChannelSize:
	case OpenChannelExtendedSize:
		m.Extended = true
		m.ConnectionID = le.Uint32(b[openConnectionID:])
		m.EventFlag = le.Uint16(b[openEventFlag:])
		m.Flags = OpenChannelFlags(le.Uint16(b[openFlags:]))
	default:
		return lengthError(TypeOpenChannel, len(b), OpenChannelSize)
	}
	m.ChannelID = le.Uint32(b[openChannelID:])
	m.OpenID = le.Uint32(b[openOpenID:])
	m.RingGpadlID = le.Uint32(b[openRingGpadlID:])
	m.TargetVP = le.Uint32(b[openTargetVP:])
	m.DownstreamRingPageOffset = le.Uint32(b[openDownstreamPage:])
	copy(m.UserData[:], b[openUserData:openUserData+UserDefinedSize])
	return nil
}

// OpenChannelResult (type 6, host→guest) answers OpenChannel.
type OpenChannelResult struct {
	ChannelID uint32 `json:"channel_id"`
	OpenID    uint32 `json:"open_id"`
	Status    uint32 `json:"status"` // an NTSTATUS; 0 is success
}

// Type is TypeOpenChannelResult.
func (*OpenChannelResult) Type() MessageType { return TypeOpenChannelResult }

// Size is OpenChannelResultSize.
func (*OpenChannelResult) Size() int { return OpenChannelResultSize }

// Append appends the 20 wire bytes.
func (m *OpenChannelResult) Append(b []byte) []byte {
	b = appendHeader(b, TypeOpenChannelResult, OpenChannelResultSize)
	b = le.AppendUint32(b, m.ChannelID)
	b = le.AppendUint32(b, m.OpenID)
	return le.AppendUint32(b, m.Status)
}

func (m *OpenChannelResult) unmarshal(b []byte) error {
	if err := checkLen(TypeOpenChannelResult, b, OpenChannelResultSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.OpenID = le.Uint32(b[secondFieldOffset:])
	m.Status = le.Uint32(b[thirdFieldOffset:])
	return nil
}

// CloseChannel (type 7, guest→host) closes an open channel. It has no
// answer.
type CloseChannel struct {
	ChannelID uint32 `json:"channel_id"`
}

// Type is TypeCloseChannel.
func (*CloseChannel) Type() MessageType { return TypeCloseChannel }

// Size is CloseChannelSize.
func (*CloseChannel) Size() int { return CloseChannelSize }

// Append appends the 12 wire bytes.
func (m *CloseChannel) Append(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, TypeCloseChannel, CloseChannelSize), m.ChannelID)
}

func (m *CloseChannel) unmarshal(b []byte) error {
	if err := checkLen(TypeCloseChannel, b, CloseChannelSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	return nil
}

// RelIDReleased (type 13, guest→host) frees a rescinded channel's id for
// reuse.
type RelIDReleased struct {
	ChannelID uint32 `json:"channel_id"`
}

// Type is TypeRelIDReleased.
func (*RelIDReleased) Type() MessageType { return TypeRelIDReleased }

// Size is RelIDReleasedSize.
func (*RelIDReleased) Size() int { return RelIDReleasedSize }

// Append appends the 12 wire bytes.
func (m *RelIDReleased) Append(b []byte) []byte {
	return le.AppendUint32(appendHeader(b, TypeRelIDReleased, RelIDReleasedSize), m.ChannelID)
}

func (m *RelIDReleased) unmarshal(b []byte) error {
	if err := checkLen(TypeRelIDReleased, b, RelIDReleasedSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	return nil
}

// ModifyChannel (type 22, guest→host, from 4.1) moves a channel's
// host→guest interrupt to another VP.
type ModifyChannel struct {
	ChannelID uint32 `json:"channel_id"`
	TargetVP  uint32 `json:"target_vp"`
}

// Type is TypeModifyChannel.
func (*ModifyChannel) Type() MessageType { return TypeModifyChannel }

// Size is ModifyChannelSize.
func (*ModifyChannel) Size() int { return ModifyChannelSize }

// Append appends the 16 wire bytes.
func (m *ModifyChannel) Append(b []byte) []byte {
	b = appendHeader(b, TypeModifyChannel, ModifyChannelSize)
	b = le.AppendUint32(b, m.ChannelID)
	return le.AppendUint32(b, m.TargetVP)
}

func (m *ModifyChannel) unmarshal(b []byte) error {
	if err := checkLen(TypeModifyChannel, b, ModifyChannelSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.TargetVP = le.Uint32(b[secondFieldOffset:])
	return nil
}

// ModifyChannelResponse (type 24, host→guest, from 5.3) answers
// ModifyChannel. Layout as OpenVMM and Linux define it: {u32 channel id,
// u32 status}.
type ModifyChannelResponse struct {
	ChannelID uint32 `json:"channel_id"`
	Status    uint32 `json:"status"` // an NTSTATUS; 0 is success
}

// Type is TypeModifyChannelResponse.
func (*ModifyChannelResponse) Type() MessageType { return TypeModifyChannelResponse }

// Size is ModifyChannelResponseSize.
func (*ModifyChannelResponse) Size() int { return ModifyChannelResponseSize }

// Append appends the 16 wire bytes.
func (m *ModifyChannelResponse) Append(b []byte) []byte {
	b = appendHeader(b, TypeModifyChannelResponse, ModifyChannelResponseSize)
	b = le.AppendUint32(b, m.ChannelID)
	return le.AppendUint32(b, m.Status)
}

func (m *ModifyChannelResponse) unmarshal(b []byte) error {
	if err := checkLen(TypeModifyChannelResponse, b, ModifyChannelResponseSize); err != nil {
		return err
	}
	m.ChannelID = le.Uint32(b[channelIDOffset:])
	m.Status = le.Uint32(b[secondFieldOffset:])
	return nil
}
