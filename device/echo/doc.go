// Package echo is govmbus's echo device (layer 7), a VSP and its VSC built
// only on the public KMCL channel API of package channel. It exists to
// prove the whole path — control plane, GPADLs, rings, signals, the
// channel layer's pools and queues — and to measure it.
//
// The VSP (Server, one per guest, offered through host.Config.OnGuest)
// answers each in-band packet: as a completion with the same payload when
// the sender asked for one, else as an in-band packet back with the same
// payload. GPA-direct packets are completed without an answer.
//
// The VSC (Client) measures round trips (Ping: a request and its
// completion) and streams (Stream: many packets in flight, each carrying a
// sequence number and a checksum, each coming back as a packet; a Checker
// verifies that every one came back once and intact).
//
// Receive-buffer mode (UseRxBuffer, vmbus guest stream --rx-buffer): the
// VSC shares guest pages as a GPADL and announces it to the VSP in an
// in-band request asking for a completion, 24 bytes:
//
//	offset  size  field
//	0       8     "rxbuffer" (0x7265666675627872 little endian)
//	8       4     GPADL id
//	12      4     0 (a stream packet has its length, at least 16, here)
//	16      2     transfer page set id, RxSetID (0xEC40)
//	18      6     0
//
// The completion's first u32 is 1 (accepted: the VSP mapped the GPADL as
// the set) or 2 (refused: another set id, a second buffer, or a GPADL the
// VSP cannot map). From then on the VSP answers stream packets (in-band
// packets without a completion request) with transfer-page packets
// asking for a completion: inline {u32 1, u32 0}, one range per answered
// packet holding its bytes, in order: the answers to one batch of the
// VSP's reads (up to 64 of them, 64 KiB) go in one packet when the batch
// ends. The VSC copies each range out and checks the copy, and completes
// the packet, which returns its ranges. When the buffer or the answers in
// flight (4096 beyond the packet count) have no room, the VSP answers in
// band as without a buffer (Server.TransferFallbacks counts those), and
// so are answers staged when a pause stopped a batch. The buffer lives
// as long as the channel; a servicing saves the ranges the guest holds.
//
// Offers use InterfaceType, a GUID fixed for govmbus, and
// InterfaceInstance unless configured otherwise.
package echo
