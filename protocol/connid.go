package protocol

// Channel ids, connection ids and the other numbers the control plane
// computes rather than reads.
const (
	// MaxChannelID is the largest channel id: host→guest signals set bit
	// "channel id" in a 2048-bit event-flags page. Id 0 is reserved.
	MaxChannelID = 2047

	// ConnectionIDInitiateContactLegacy is where a guest posts
	// InitiateContact for versions before 5.0.
	ConnectionIDInitiateContactLegacy = 1
	// ConnectionIDInitiateContact is where a guest posts InitiateContact
	// from version 5.0 on. Later messages go to the message connection id
	// the VersionResponse returns.
	ConnectionIDInitiateContact = 4

	// VPIndexNoInterrupts as OpenChannel's target VP asks for no
	// host→guest interrupts at all.
	VPIndexNoInterrupts = 0xFFFFFFFF
	// MonitorIDNone in an offer means no monitor page slot is allocated.
	MonitorIDNone = 0xFF
	// MessageSINT is the SINT Linux guests ask for channel messages on
	// and the one host→guest channel signals use.
	MessageSINT = 2
)

// ValidChannelID reports whether id can name a channel (1..2047).
func ValidChannelID(id uint32) bool { return id >= 1 && id <= MaxChannelID }

// ChannelConnectionID is the connection id a channel is signalled on:
// channel id | sint<<12 | vtl<<16, as the offer's connection id carries it
// (0x2001 for channel 1 on SINT 2).
func ChannelConnectionID(channelID uint32, sint, vtl uint8) uint32 {
	return channelID | uint32(sint)<<12 | uint32(vtl)<<16
}

// InitiateContactConnectionID is the connection id a guest posts
// InitiateContact to when it requests version v: 4 from 5.0 on, 1 before.
func InitiateContactConnectionID(v Version) uint32 {
	if v >= VersionWin10RS31 {
		return ConnectionIDInitiateContact
	}
	return ConnectionIDInitiateContactLegacy
}
