// Package pipe is the pipe framing of VMBus channels offered in
// named-pipe mode (KMCL's IS_PIPE / OFFER_AS_PIPE; DEVICES.md §1): a
// Conn on one channel, server (host) or client (guest), with the Read,
// Write, CloseWrite, Close and deadline methods that net.Conn asks for.
// It stands on the public channel API only, beside the devices.
//
// # Framing
//
// Every in-band packet starts with the pipe header {u32 type, u32 size}:
// type 1 (data) and the size of the data that follows (ParseHeader,
// PutHeader). Packets go out as in-band packets with transaction id 0
// and no flags, at most MaxData (16384) bytes of data each. A data
// packet of size 0 is the end of one direction (CloseWrite sends it
// once; the peer's Read then returns io.EOF). Type 2 (OpenVMM's mark of
// a packet read in part, inside its own ring), 3 and 4 (GPA direct, no
// open layout) and unknown types are malformed.
//
// # Modes
//
// The mode is the offer's (channel.SetPipeMode on the server; a client
// reads it from the offer as the channel opens). Byte mode is a stream:
// Write splits into packets of Config.MaxData, Read fills its buffer from
// as many held packets as it takes and leaves the rest of a packet for
// the next Read. Message mode keeps
// boundaries: a Write is one packet, a Read one whole message, and a
// buffer too small for it fails with ErrShortBuffer without losing the
// message.
//
// # Flow control
//
// Nothing is buffered without bound in either direction. A Write that
// finds the outgoing ring full waits (channel.WaitSendSpace) for the
// peer to read: the ring's pending send size asks for its signal, no
// polling. A received packet stays held, not completed, until Read has
// consumed it; the channel's pool holds Config.MaxPackets of them, so a
// reader that does not read stops the channel reading its ring, the
// ring fills, and the peer's writer waits. The packet's own copy (made
// by the channel, out of the ring the peer can change) is the one Read
// copies from: the receive path copies once.
//
// # Direct
//
// A reader that only passes the stream on (a relay to a socket) can
// take it on the channel's receive goroutine instead (SetDirect): while
// its Read waits, the packets of a batch are held without waking it and
// handed to its function when the batch ends (or the packets held reach
// MaxPackets), which writes them out without blocking; the Read wakes
// only for what is left. The hand-off of every batch from the receive
// goroutine to the reader is a thread wake-up on a machine whose other
// cores are busy.
//
// # A hostile peer
//
// A malformed packet fails the receive side: Read returns the data
// received before it, then an error matching ErrMalformed, for good.
// Later packets are completed and dropped as they come, so the peer's
// ring keeps moving and the channel never waits on this Conn. A packet
// larger than a pipe packet can be stops the channel's incoming queue
// (the channel's own rule for packets past its limits); the Conn hears
// it (channel.SetIncomingStoppedCallback) and fails the same way.
//
// # Lifecycle
//
// New takes a configured, disabled channel and its packet and state
// callbacks; the caller enables it (and starts it, on a server) and
// disables it after Close. When the channel closes (the peer closed or
// rescinded it), Read returns what is held, then io.EOF if the end of
// stream came first, else ErrChannelClosed. A Suspend (Pause, close)
// completes the held packets, their unread data moved into copies first,
// so that a paused and restarted channel loses nothing; until the Read
// has taken the copies, the channel's transaction quota lets the Conn
// hold only as many packets beside them as MaxPackets leaves (at least
// one). The Conn owns that quota: the caller does not set one.
//
// # Servicing
//
// A byte-mode Conn is carried across a host's servicing as its owner's
// state (package hvsock does so for its relays; servicing.go): the owner
// stops reading and writing, pauses the channel, whose Suspend moves the
// data held unread into copies and completes the packets (so the
// channel's saved state holds none of them), and keeps Unread's bytes and
// whether the end of stream came. The successor restores the channel,
// makes a new Conn on it and tells it which ends were passed (Restored);
// the unread bytes are its owner's to deliver first. The send side needs
// nothing: a Write returns only once its packets are in the ring, which
// is guest memory and survives the servicing, and a Write cut short (its
// owner's deadline) returns the count of what went in.
package pipe
