// Package ring implements one direction of a VMBus ring buffer: a 4096-byte
// control page followed by the data area, in a byte region that another
// process (or a guest) may share. It is layer 1 of govmbus and knows nothing
// of channels: above it sit the control protocol, guest memory and the
// channel API.
//
// The layout is byte-identical to the rings of Linux, FreeBSD, DPDK and
// Hyper-V: a 16-byte descriptor, an optional type header, the payload padded
// to 8 bytes and an 8-byte footer per packet; indices are byte offsets into
// the data area and a packet may wrap around its end.
//
// # Endpoints and batches
//
// A Writer appends packets and a Reader consumes them. Both work in
// batches: Write and Next only move a private index; Commit publishes it
// with one atomic store and says whether the peer must be signalled, by the
// exact predicates real VMBus uses (interrupt mask; pending send size). A
// batch that was not committed can be reverted. The ring never signals by
// itself: the owner of the endpoint delivers the signal (an eventfd, a
// hypercall), so one batch costs at most one signal. A writer that finds
// the ring full asks to be signalled once its packet fits (WaitFor, the
// pending send size), counting the part of its batch not yet published,
// which the reader cannot see.
//
// # The peer is hostile
//
// The other side may change any byte of the region at any moment. Each of
// its indices is loaded once per refresh, each descriptor and type header
// is copied out before it is validated, and every count and length is
// checked against the bytes actually available. A ring that breaks a rule
// gives a *CorruptError (errors.Is(err, ErrCorrupt)) naming the offset and
// the rule; the endpoint then stays failed. No input makes this package
// panic, loop, or touch memory outside the region.
//
// Payload views are not copied: they alias the shared data area, so the
// peer can still change their bytes. Treat them as untrusted input, copy
// what must not change under you, and stop using them at Commit.
//
// # Sizes
//
// PacketLen, PayloadLen and PacketsFit say how much of a ring a packet
// takes and how many fit, and the *Offset constants name the control-page
// fields, so that the layers above size windows and check limits without
// restating the layout. They never overflow, whatever length they are given.
//
// # Concurrency
//
// A Writer and a Reader of the same ring may run on different goroutines
// or processes. Each endpoint itself is not safe for concurrent use.
package ring
