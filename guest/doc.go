// Package guest is the VMBus client's control plane (layer 5 of govmbus):
// it makes guest memory, connects to a host over package transport, hands
// the memory over, negotiates a version, asks for offers, shares guest
// pages as GPADLs, opens and closes channels and unloads.
//
// It sits on protocol, guestmem, ring (to format a channel's rings) and
// transport. A VSC (or the channel layer above) uses the Channel's rings
// and events; the control plane never touches ring data.
//
// # Negotiation
//
// New offers the versions of Config.Versions (default protocol.Versions(),
// newest first) one by one until the host accepts one; a host that accepts
// none gives ErrNoVersion. For Copper the client asks for Config.Features
// and keeps the intersection with what the host grants.
//
// # State machines
//
// The connection:
//
//	New: memory handed over ─► InitiateContact ─► VersionResponse (next version if refused)
//	  ─► connected ─RequestOffers─► offers arriving ─AllOffersDelivered─► offered
//	  ─Unload─► UnloadComplete (host dropped every channel and GPADL)
//
// A channel:
//
//	offered ─Open: ring GPADL, events, OpenChannel─► open ─Close: CloseChannel,
//	  GpadlTeardown ─► offered
//	offered/open ─RescindChannelOffer─► rescinded ─(not open, or Close)─► RelIdReleased
//
// # Trust
//
// The host is not trusted: undecodable messages and offers with invalid
// channel ids are ignored, answers nobody asked for are dropped, and an
// answer that contradicts its request fails the request with an error
// wrapping ErrProtocol (errors.Is), the sentinel that names the host's
// fault. The device clients built on this package wrap it too for what
// their host does wrong (a response of the wrong size or kind, data it
// claims to have moved but did not). Every request that waits for an
// answer takes a context, and fails with ErrClosed when the connection
// ends; docs/HOSTILE_HOST.md lists the waits.
//
// # Concurrency
//
// Client methods are safe for concurrent use; one goroutine receives the
// host's messages and hands each answer to the request that waits for it.
package guest
