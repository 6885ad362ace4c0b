// Package transport carries what crosses between a VMBus host and guest
// when there is no hypervisor: control messages, the guest memory
// descriptor, and per-channel signals.
//
// On Hyper-V a control message is a SynIC message posted by hypercall,
// guest memory is simply there for the host, and a signal is an event
// flag plus an interrupt. Here the host and guest are two processes, so:
//
//   - control messages travel as datagrams on a Unix SOCK_SEQPACKET
//     socket, at most MaxMessageSize bytes each, opaque to this package;
//   - guest memory (package guestmem) is a sealed memfd the guest hands to
//     the host once, as SCM_RIGHTS ancillary data;
//   - each open channel has one eventfd per direction (an Event); one side
//     creates it and hands it over on the same socket.
//
// This is the only layer that knows there is no hypervisor: the control
// planes above (host, guest) see messages, a guestmem.Memory and Events.
// The rings themselves never pass through here; they live in guest
// memory.
//
// The frames on the socket are specified in docs/TRANSPORT.md. Everything
// the peer sends is hostile until checked: a malformed frame, an
// unexpected descriptor or a descriptor of the wrong kind ends the
// connection with an error matching ErrProtocol, and every descriptor that
// arrives is either adopted or closed, never leaked.
//
// Roles: the host listens (Listen, Accept), the guest dials (Dial). Pipe
// gives both ends in one process for tests, over a real socketpair, so
// tests exercise the same code as two processes do.
//
// Servicing: a host that re-executes itself passes the connection's socket
// (Conn.File), the listener (Listener.File), guest memory
// (guestmem.Memory.File) and events (Event.File) to its successor, which
// rebuilds them with FromFile, ListenerFromFile, guestmem.FromFile and
// EventFromFile, or, taking the inherited files over instead of
// duplicating them, guestmem.AdoptFile and AdoptEvent (AdoptEventFD and
// guestmem.FromFD for bare descriptors). An exec in place may pass the
// live descriptors themselves instead of duplicates: Conn.Descriptor,
// Event.Descriptor and guestmem.Memory.Descriptor lend their numbers.
// Nothing is said to the guest: a connection ends only
// when the last descriptor of one of its ends is closed, so the guest
// does not notice the handover.
package transport
