// Package hvsock is Hyper-V sockets on both ends of the bus, as package
// net's shapes: listeners whose Accept returns a net.Conn, dialers that
// return one, addresses as (VM, service GUID). It stands where the
// devices do (layer 7), on the channel API and package pipe, and imports
// neither ring nor guestmem.
//
// Every connection is a VMBus channel of its own, a byte-mode pipe
// (package pipe; DEVICES.md §2):
//
//   - Guest-initiated: the guest sends a TlConnectRequest (Dial); the
//     host's Server.OnConnect, plugged into host.Config.OnConnect, offers
//     a server channel whose interface type is the service and instance
//     the guest's endpoint (flags 0x2011, pipe mode byte, parameter
//     version 1), or refuses (a TlConnectRequestResult from protocol 4.1,
//     nothing before). The guest opens it with 64-page rings (6 before
//     protocol 5.0) and writes packets of up to 16384 bytes.
//   - Host-initiated: Server.Dial offers a channel with
//     is_for_guest_accept set to a service a guest Listen-s on.
//
// The host rescinds a channel the guest does not open within
// Config.OpenTimeout, and a connection once both directions have ended
// (each side's CloseWrite, its FIN) or at its Close. Before an orderly
// rescind, and before a guest closes its channel, the closing side waits
// (at most Config.LingerTimeout, CloseTimeout on the guest) until the
// peer has read what is still in the ring: a channel that closes stops
// reading its ring, and would drop the last bytes and the FIN. A peer
// that closes its channel or goes away resets the connection (ErrReset,
// ECONNRESET).
//
// # Errors
//
// Errors are *net.OpError values as the standard library's: deadlines
// match os.ErrDeadlineExceeded and are net.Errors with Timeout; calls
// after Close fail with net.ErrClosed; Read returns io.EOF, unwrapped,
// after the peer's FIN; a refused Dial matches ErrRefused and
// syscall.ECONNREFUSED.
//
// # Limits
//
// A guest cannot make the host hold more than these, whatever it sends:
//
//	what                                        bound (default)                       at the bound
//	──────────────────────────────────────────  ────────────────────────────────────  ─────────────────────────────
//	connect requests waiting for their channel  host.Limits.MaxPendingConnects (32),  refused
//	                                              each at most ConnectTimeout (5 s)
//	connections per guest, open or being made   Config.MaxConnsPerGuest (64)          refused; Dial: ErrLimit
//	connections not yet accepted, per listener  Config.Backlog (16)                   refused
//	time to open an offered channel             Config.OpenTimeout (5 s)              rescinded
//	bytes received ahead of the reader          Config.MaxBuffered (256 KiB): the     the peer's writer waits for
//	                                              pipe's held packets, 16 KiB each    ring space
//	wait for the guest to read before a rescind Config.LingerTimeout (8 s)            rescinded anyway
//
// A host writer to a guest that never reads waits for ring space (until
// its write deadline): the host holds the ring and nothing more. Each
// connection costs the host one channel (its worker and receive
// goroutines) and, while it is being made, one goroutine of the Server.
//
// # Servicing
//
// A Relay's connections are carried across a host's servicing (package
// hosting drives it): Relay.Pause stops each connection's two directions
// at a clean point (a deadline cuts short the call in progress; what was
// read and not yet written stays in the direction's buffer) and pauses
// its channel; Carried.Save gives its ConnState (the channel's state, the
// bytes on their way both ways, how far each direction's end got) and a
// duplicate of its local socket; the successor's Relay.Restore rebuilds
// the connection on the channel the bus restored and goes on from the
// saved bytes. Connections on their way in are carried too: Pause holds
// the accept loop and waits for the local dials in progress, and
// Relay.PauseLate, once the bus is parked, takes those the guests opened
// since; ResumeAccept lets a relay accept again after a failed
// servicing. A Conn that is no Relay's is not carried, nor is a connect
// whose channel the guest had not opened when the bus parked: its channel
// is left to the successor, which rescinds it (the guest reads a reset).
// docs/HVSOCK.md, Servicing.
//
// # Relays
//
// Relay relays a service's guest connections to a local socket (vmbus
// host --hvsock-relay), Server.Connect a local Unix socket's connections
// to a guest's service (vmbus host --hvsock-connect), Splice joins two connections both ways with
// half-close passed on, Exec runs a command on a connection, and Stdio
// is the guest's nc (vmbus guest hvsock dial|listen [--exec]);
// docs/HVSOCK.md, Relay CLI.
package hvsock
