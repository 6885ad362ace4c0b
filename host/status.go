package host

// NTSTATUS values the host puts in GpadlCreated, OpenChannelResult and
// ModifyChannelResponse. Guests only test for zero; the codes say why in a
// packet capture.
const (
	statusSuccess              uint32 = 0x00000000
	statusUnsuccessful         uint32 = 0xC0000001 // the device refused the open
	statusInvalidParameter     uint32 = 0xC000000D // a field names nothing valid
	statusInsufficientResource uint32 = 0xC000009A // a limit was reached
	statusInvalidDeviceState   uint32 = 0xC0000184 // the channel is in the wrong state (already open, rescinded)
)
