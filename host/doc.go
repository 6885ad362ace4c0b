// Package host is the VMBus server's control plane (layer 5 of govmbus):
// it accepts guests over package transport, negotiates a protocol version
// with each, offers them the registered devices, builds their GPADLs,
// opens and closes their channels, rescinds offers and answers Unload.
//
// It sits on protocol (the messages), guestmem (the guest's memory, mapped
// once per guest), ring (to validate a ring before a device sees it) and
// transport (messages, memory and events). Above it, the channel layer (the
// KMCL model) implements Device and drives the rings; devices like echo sit
// above that.
//
// # Offers
//
// Every guest is offered one channel per Device. Channel ids are 1…N in
// the order of (interface type, interface instance, subchannel index),
// GUIDs compared by their wire bytes, so they are stable; the connection id
// is channel id | SINT 2 << 12. RequestOffers is answered with every offer,
// then AllOffersDelivered.
//
// Beside those, a guest can be offered channels of its own at run time:
// Config.OnGuest hands over a *Guest once the guest made contact, and
// Guest.Offer adds an offer (to the initial list before RequestOffers, as
// a live OfferChannel after) under the lowest free channel id above the
// devices'. Offered.Rescind withdraws it (RescindChannelOffer, done at
// RelIdReleased). The KMCL server channels of package channel use this.
//
// # Connections (hvsock)
//
// A guest's TlConnectRequest (4.0 and later) asks for a connection to a
// host service. The host keeps it pending and calls Config.OnConnect, which
// makes the connection by offering a channel of interface type the service
// id and instance the guest's endpoint id (package hvsock), or refuses it.
// A refusal is a TlConnectRequestResult with STATUS_CONNECTION_REFUSED from
// 4.1 and nothing before, as Hyper-V does: such a guest learns only by its
// own timeout. The request stops counting as pending when that channel is
// opened or removed, or after Limits.ConnectTimeout.
//
// # Versions
//
// Every version of protocol.Versions is accepted, exactly as asked; an
// unknown one gets a VersionResponse saying it is not supported. From 5.0
// the response carries MessageConnectionID (1); for Copper it carries
// SupportedFeatures and the guest gets the intersection of what it asked
// and those.
//
// # State machines
//
// A guest connection:
//
//	awaiting contact ──InitiateContact (known version)──► connected ──RequestOffers──► offered
//	      ▲                                                                              │
//	      └──────────────────── Unload → UnloadComplete (channels closed, GPADLs dropped) ┘
//	any state ──(peer gone, transport error, too many bad messages, Close)──► disconnected:
//	      open channels closed (Device.Close), GPADLs dropped, memory unmapped
//
// A channel, for one guest:
//
//	offered ──OpenChannel ok──► open ──CloseChannel──► offered
//	   └───────── rescind (Shutdown) ─┴──► rescinded ──RelIdReleased──► released
//
// A GPADL: see gpadlState in gpadl.go. GpadlTorndown is sent only once
// neither a device mapping (GpadlTable.Map) nor an open channel's ring
// uses the GPADL.
//
// # Misbehaving guests
//
// Each guest is isolated: what it sends affects only its own connection.
//
//	what the guest sends                              what the host does
//	────────────────────────────────────────────────  ─────────────────────────────────────
//	transport violation (bad frame, bad memfd)        disconnect (transport reports it)
//	undecodable message, unknown type                 drop + log line
//	any message before InitiateContact                drop + log line
//	message too new for the version / feature off     drop + log line
//	host→guest message type, unsupported type         drop + log line
//	second InitiateContact, second RequestOffers      drop + log line
//	InitiateContact with an unknown version           VersionResponse "not supported"
//	GpadlHeader: unknown channel, id in use, bad
//	  counts, too many GPADLs                         GpadlCreated with a failure status
//	GPADL whose ranges are malformed, lie outside
//	  guest memory, or pass the page limit            GpadlCreated with a failure status
//	GpadlBody for no GPADL being created              drop + log line
//	GpadlBody that overruns or names another GPADL    GpadlCreated with a failure status
//	GpadlTeardown of an unknown GPADL                 drop + log line
//	OpenChannel: unknown/rescinded channel, already
//	  open, GPADL missing or of another channel, bad
//	  downstream offset, ring not whole pages, corrupt
//	  ring control page, events missing, device error OpenChannelResult with a failure status
//	CloseChannel of a channel not open                drop + log line (silently if rescinded)
//	RelIdReleased of a channel not rescinded          drop + log line
//	TlConnectRequest before 4.0, or of 56 bytes
//	  (silo id) before 5.2                            drop + log line
//	TlConnectRequest: no Config.OnConnect, OnConnect
//	  error, before RequestOffers, endpoint already
//	  pending, Limits.MaxPendingConnects pending      refused: TlConnectRequestResult
//	                                                    0xC0000236 from 4.1, nothing before
//	more than Limits.MaxBadMessages drops             disconnect
//	no room in its control socket for a message the
//	  host sends, for Limits.SendTimeout              disconnect
//	no RelIdReleased Limits.ReleaseTimeout after a
//	  rescind                                         disconnect
//
// What a guest does to the rings of its open channels (indices out of
// range, descriptors that do not add up, a read index that lies, signal
// floods, a ring it fills and never drains) is for the channel layer
// above: a corrupt ring stops that channel's reading, a full one stops
// its sending, a signal flood makes its receive goroutine pause 1 ms
// every 64 wake-ups that find nothing to do, and the rest of the guest
// and every other guest go on. An eventfd the guest switches to blocking
// mode, its count pinned at the limit, holds no host thread: the host's
// waits never block in the kernel and a signal stuck in its write is
// freed within 100 ms (transport.Event).
// `vmbus guest chaos` tries all of the above against a running host.
//
// # Limits
//
// Everything a guest can make the host hold is bounded, and what the
// host does at the bound is fixed:
//
//	what                                  bound (default)                       at the bound
//	────────────────────────────────────  ────────────────────────────────────  ───────────────────────────────
//	guest connections                     Limits.MaxGuests (64)                 the new one is closed at once
//	channels per guest                    one per device and Guest.Offer,       Guest.Offer: ErrNoChannelID
//	                                        channel ids 1..2047 (a guest
//	                                        makes none but through
//	                                        OnConnect, whose layer bounds
//	                                        them: hvsock.Config)
//	GPADLs per guest, half-built included Limits.MaxGpadls (1024)               GpadlCreated, failure status
//	range buffer of a GPADL arriving      64 KiB (protocol)                     GpadlCreated, failure status
//	pages named by a guest's GPADLs       Limits.MaxGpadlPages (2^18, 1 GiB)    GpadlCreated, failure status
//	control messages from the guest       one at a time, handled before the     the guest's sends wait (kernel
//	                                        next is read; none queued here        socket buffer)
//	control messages to the guest         none queued: sent as they arise,      disconnect
//	                                        waiting Limits.SendTimeout (2 s)
//	                                        at most for socket room
//	dropped (bad) messages                Limits.MaxBadMessages (256)           disconnect
//	a rescind's wait for RelIdReleased    Limits.ReleaseTimeout (10 s)          disconnect
//	a connection's time to negotiate      Limits.ContactTimeout (10 s)          disconnect
//	TlConnectRequests waiting for their   Limits.MaxPendingConnects (32), each  refused (as if nothing listened)
//	  channel's open                        counted until its channel opens or
//	                                        goes, at most Limits.ConnectTimeout
//	                                        (5 s)
//	events handed over, not taken         1024 (package transport)              disconnect
//	guest memory                          1 TiB (package transport)             disconnect
//
// The host's control plane for a guest sends while it holds that guest's
// state (so that messages leave in the order they arose); the send
// timeout is what bounds that hold, and it holds up only that guest's
// connection, its devices' calls into it and a servicing that waits for
// it to park. Per open channel, the channel layer bounds the rest: the
// incoming packets a device holds (channel.SetMaxPacketCount: echo 256,
// blk 64), and with them the transactions in flight and the completions
// queued for ring space (one per incoming packet), the size of a packet
// (SetMaxPacketSize) and of its external data (SetMaxExternalData).
//
// # Servicing
//
// SaveGuests parks every guest's control plane between two messages (what
// the guest sends meanwhile stays in the socket), saves each connection's
// bus state (docs/SAVED_STATE.md, scope bus: version, features, channel
// ids and states, open parameters, GPADLs complete, arriving or tearing
// down) and lends its descriptors (SavedGuest, FD: no duplicates, valid
// until Close, which an exec in between makes moot); from then on the host
// says nothing to the guest. SavedGuest.Own duplicates them when they must
// outlive the host (a failed exec). Restore and RestoreOwned rebuild the
// connections from those descriptors and states, checked first,
// without a message to the guest: offers are not sent again, a teardown
// that waited still waits, a half-sent GPADL continues. Server channels of
// package channel re-attach (Guest.Reattach) or are abandoned
// (Guest.Abandon, FORCE_NEW_CHANNEL); Resume then starts the control
// planes.
//
// # Logging
//
// One log/slog line per lifecycle event (guest connected, version
// negotiated, offers sent, channel opened/closed, GPADL refused, message
// dropped, disconnected), none per packet; GPADL creation and teardown are
// at Debug level.
package host
