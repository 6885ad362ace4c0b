// Package protocol is layer 2 of govmbus: the VMBus channel-management
// messages that the host (VMBus server) and the guest (VMBus client) post to
// each other, byte for byte as Hyper-V, Linux and OpenVMM lay them out.
//
// It sits above package gpa (GPA ranges, which GPADL messages carry) and
// below the transport, which moves these messages between processes, and the
// host and guest control planes, which decide what to send. It knows nothing
// of rings, memory or signals: it turns a message into bytes and bytes back
// into a message, and that is all.
//
// Every message is an 8-byte header {u32 type, u32 padding} and a body, at
// most MaxMessageSize (240) bytes in all, the payload of one SynIC message.
// Each message type is a Go struct with a hand-written, exact-length encoder
// and decoder; offsets are named constants, so the layout can be read off
// the code and checked against the wire document (docs and
// /work/shared/reference/WIRE.md §5).
//
// # Untrusted input
//
// Decode's input comes from the peer, which may be hostile. Decode checks
// the length before it reads a byte of the body, accepts only the exact
// lengths of the forms listed in MessageType.Lengths, and returns a typed
// error (errors.Is with ErrShort, ErrTooLong, ErrUnknownType or ErrLength)
// for anything else. It never panics and never reads outside its input. It
// does not alias its input either: the decoded message is a copy, so the
// input may be a buffer the peer can still write.
//
// Decode checks structure only. Whether a field's value makes sense (a
// channel id the host offered, a version it supports, a message allowed in
// the negotiated version: see MessageType.MinVersion) is the control
// plane's business.
//
// GPADL range buffers are split over a GpadlHeader and GpadlBody messages;
// NewGpadlMessages splits and GpadlReassembler reassembles and validates,
// with every peer-supplied count bounded before it is used.
//
// # Canonical form
//
// Padding and reserved bytes and bits are written as zero and ignored when
// read, so decoding then encoding yields the canonical bytes of a message,
// which equal the input whenever the peer left its reserved fields zero.
package protocol
