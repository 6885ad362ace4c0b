// Package savedstate is the container format of govmbus's saved state: a
// sequence of self-checking records, the chunked save loop with KMCL's
// exact SaveContinue semantics, and a restorer that takes whole chunks and
// validates everything before anyone acts on it.
//
// The channel layer (KMCL's VmbChannelSaveBegin / SaveContinue / SaveEnd /
// RestoreFromBuffer) and the host's bus state both save through this
// package. It knows nothing of what the records mean: it frames, numbers,
// checksums and bounds them. Record kinds and their bodies belong to the
// layer that writes them; docs/SAVED_STATE.md lists every kind.
//
// # Records
//
// Every record is a 32-byte header, a body, and zero padding to 8 bytes:
//
//	0  u32 magic "VMBS" (0x53424D56)
//	4  u16 format version (1)
//	6  u16 kind
//	8  u32 body length (padding not counted)
//	12 u32 sequence number (0 for the Begin record, then 1, 2, ...)
//	16 u64 save id: a random number shared by every record of one save
//	24 u32 flags: bit 0 "critical" (a reader that does not know the kind
//	       must reject the state rather than skip the record)
//	28 u32 CRC-32C of the header (with this field zero) and the body
//
// A save is Begin, the caller's records, End. Begin carries the scope
// (channel or bus), the number of records and the caller's identity bytes
// (which channel this is). End carries the count again and the CRC-32C of
// every byte before it. Records are indivisible: SaveContinue writes only
// whole records, and RestoreFromBuffer accepts only whole records.
//
// # What a restorer checks
//
// Magic, format version, header and body checksum, zero padding, sequence
// numbers without gaps, one save id throughout, Begin first and End last
// with the right count and digest, and the limits on record and total
// size. Anything else is an *Error matching ErrInvalid, and the Restorer
// stays failed. A saved state is the peer's input too: after a servicing
// it comes from a file or another process, so it is parsed as hostile.
package savedstate
