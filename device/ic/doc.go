// Package ic is Hyper-V's integration components (layer 7): the heartbeat,
// shutdown, time sync and KVP (data exchange) services, both ends, built
// only on the public KMCL channel API of package channel.
//
// The wire format (wire.go and one file per service) follows
// ../shared/reference/DEVICES.md §1.2 and §3: every packet is a pipe
// header, an IC header and a body, little-endian, marshalled and
// unmarshalled by hand at exact lengths. The peer is hostile on both
// sides: every parser copies and checks before it acts, and a malformed
// message is an error (ErrMalformed), never a panic.
//
// The VSPs (Server, one per service per guest, offered with the real
// interface GUIDs) drive each channel as Hyper-V does: they propose
// versions as soon as the guest opens, the guest chooses, and then they
// send requests and read the guest's replies, one request outstanding at
// a time. The VSCs (Client) answer as a Linux guest does. docs/ICS.md
// documents the protocol as implemented, the sources of its facts and
// what is left out (VSS, file copy, KVP's IP operations).
package ic
