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
// Offers use InterfaceType, a GUID fixed for govmbus, and
// InterfaceInstance unless configured otherwise.
package echo
