package channel

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/savedstate"
	"github.com/govmbus/govmbus/transport"
)

// MTU is the largest packet KMCL sends: header, payload and external data
// descriptors together (65535 × 8 bytes, what a descriptor can describe).
const MTU = ring.MaxPacketLen

// Defaults of the Set* configuration.
const (
	DefaultMaxPacketSize    = 4096
	DefaultMaxPacketCount   = 64
	DefaultMaxExternalSize  = 1 << 20
	DefaultMaxExternalChain = 256
	DefaultRingPages        = guest.DefaultRingPages
	maxOutPackets           = 1 << 16 // AllocatePacket fails beyond this many live packets
	maxPacketCountLimit     = 1 << 16
	maxContextSize          = 1 << 16
)

// ChannelFlags are the flags of SetFlags.
type ChannelFlags uint32

// ChannelFlagIsPipe (KMCL VMBUS_CHANNEL_FLAG_IS_PIPE) marks a pipe channel.
// It is recorded and, on a server, offers the channel in named-pipe mode
// (SetPipeMode chooses the mode); package pipe frames the payloads.
const ChannelFlagIsPipe ChannelFlags = 0x1

// ServerFlags are the flags of SetServerFlags.
type ServerFlags uint32

// Server flags (KMCL VMBUS_CHANNEL_SERVER_*).
const (
	ServerLoopbackOffer            ServerFlags = 0x1
	ServerEnumerateDeviceInterface ServerFlags = 0x2
	ServerOfferAsPipe              ServerFlags = 0x4
	ServerForceNewChannel          ServerFlags = 0x8
	ServerTLNPIProviderOffer       ServerFlags = 0x10
)

// PacketFlags are the flags ProcessPacket receives.
type PacketFlags uint32

// PacketFlagExternalData says the packet describes memory outside the ring
// (a GPA-direct packet): see Packet.ExternalData.
const PacketFlagExternalData PacketFlags = 0x1

// SendFlags are the flags of the send functions.
type SendFlags uint32

// Send flags (KMCL VMBUS_CHANNEL_FORMAT_FLAG_*).
const (
	// SendWaitForCompletion: the packet completes when the peer's
	// completion arrives (matched by transaction id); without it,
	// completion means "placed in the ring".
	SendWaitForCompletion SendFlags = 0x1
	// SendForceMDLLength, SendPagedBuffer, SendDataInOnly and
	// SendDataOutOnly are accepted for source compatibility and have no
	// effect: Go buffers are neither MDLs nor paged.
	SendForceMDLLength SendFlags = 0x2
	SendPagedBuffer    SendFlags = 0x4
	SendDataInOnly     SendFlags = 0x8
	SendDataOutOnly    SendFlags = 0x10
)

// GpadlFlags are the flags of CreateGpadl.
type GpadlFlags uint32

// GpadlReadOnly asks that the server only read the GPADL's pages. There is
// no read-only bit on the VMBus wire: see CreateGpadl.
const GpadlReadOnly GpadlFlags = 0x1

// ProcessPacketFunc is KMCL's EvtVmbChannelProcessPacket: one incoming
// packet. payload excludes the VMBus headers and is the packet's own copy,
// valid until Complete (or Fail); as on the wire, its length is a multiple
// of 8 (the sender's padding included). Every packet must eventually
// be completed. It runs on the channel's receive goroutine, one packet
// after the other in ring order, and must not block (unless
// SetBlockingProcessing was set; then it runs on the channel's worker
// goroutine and may block). It must not call Pause, Start, Disable or
// Cleanup.
type ProcessPacketFunc func(c *Channel, p *Packet, payload []byte, flags PacketFlags)

// ProcessingCompleteFunc is KMCL's EvtVmbChannelProcessingComplete: the
// incoming ring went from non-empty to empty after count packets were
// indicated. It runs where ProcessPacket does, after it.
type ProcessingCompleteFunc func(c *Channel, count int)

// StateCallbacks are KMCL's state-change callbacks. Each may be nil. They
// run one at a time on the channel's worker goroutine. Called from inside
// them, Enable, Disable, Pause, Start and Cleanup of the same channel fail
// with StatusInvalidDeviceState; called from another goroutine meanwhile,
// they wait for the callback to return.
type StateCallbacks struct {
	// Opened: the peer opened the channel (server) or the open succeeded
	// (client). An error rolls back: the open fails and no packet flows.
	// GPADLs may be created (client) or mapped (server) from here on.
	// On a server it must not wait for the guest: the guest's open
	// waits for it.
	Opened func(c *Channel) error
	// Closed: the channel closed. Every GPADL must be destroyed (client)
	// or unmapped (server) in it; those left are destroyed right after.
	Closed func(c *Channel)
	// Suspend: packets stop. After it no ProcessPacket runs until the
	// next Started; the driver completes what it was given and stops
	// sending. A server retires its outstanding transactions.
	Suspend func(c *Channel)
	// Started: packets are about to flow. It may queue sends and must not
	// block on incoming packets or completions: the incoming queue is not
	// running yet.
	Started func(c *Channel)
	// PostStarted: the incoming queue is live; the place for synchronous
	// sends (protocol negotiation). It runs on the worker goroutine, so
	// while it blocks, deferred packets wait.
	PostStarted func(c *Channel)
}

// Channel is one endpoint of a VMBus channel with the KMCL lifecycle:
// a server (VSP, host side) or client (VSC, guest side) channel.
//
// Configuration (Set*) is allowed only while the channel is disabled.
// Lifecycle calls (Enable, Disable, Pause, Start, Cleanup) may come from
// any goroutine but not concurrently with each other. Packet functions
// are safe for concurrent use.
//
// The fields are grouped by what guards them. The lock order, outermost
// first (a goroutine holding one takes only those after it):
//
//	life → saveMu → diag.mu → sendMu → mu → work.mu
//
// A subchannel's Enable takes its primary's mu holding only its own life.
// The packet paths take sendMu and mu, never life or saveMu.
type Channel struct {
	// Fixed at allocation.
	server bool
	// spaceWake wakes a WaitSendSpace (sendwait.go); spaceWaiters counts
	// them, so the receive loop posts only when one waits.
	spaceWake    chan struct{}
	spaceWaiters atomic.Int32
	dev          serverDevice // what the host calls (Offer, Reattach): one per channel, not one per call

	// Written by the Set* functions while the channel is disabled (under
	// mu), read without a lock once it is enabled: Enable orders the
	// writes before every goroutine that reads them.
	cfg config

	// Lock-free: each says on its own what it is.
	user         atomic.Value  // SetUserContext
	inCallback   atomic.Int32  // a state callback runs (on the worker)
	workerID     atomic.Uint64 // goid of the worker goroutine, once it ran a callback; else 0
	waitRestarts atomic.Bool   // Pause waits for restartable packets too (SetPauseWaitsForRestartable)
	// rxRun mirrors flow == flowLive for the receive loop's fast path
	// (flowLocked keeps it in step).
	rxRun atomic.Bool
	// rxSleeping is set while the receive loop waits for its event, past
	// every decision to read: a loop asleep when its flow leaves live is
	// parked already (it looks at flow, under mu, before it reads again),
	// so it need not be woken to say so.
	rxSleeping atomic.Bool
	// rxKick: the channel woke its own receive loop (wakeRx), which a
	// poll, spinning with its event unread, looks at instead.
	rxKick atomic.Bool
	// pollMax is the poll budget SetPoll set, in nanoseconds.
	pollMax atomic.Int64
	// pl is the receive loop's own: its adaptive poll budget.
	pl poller
	// saveOpen mirrors saving || saver != nil for the send paths, which
	// read it under sendMu without taking mu.
	saveOpen atomic.Bool

	// life serializes the lifecycle calls. Enable makes the worker's
	// channels below under it, before the worker starts; each is then
	// used without a lock.
	life          sync.Mutex
	ctl           chan request
	workerDone    chan struct{}
	lost          chan struct{} // the receive loop lost its event
	primaryClosed chan struct{}
	released      chan struct{} // Release went live: PostStarted is due
	idle          chan struct{} // outstanding dropped to 0
	work          workQueue     // its own lock, the innermost

	// saveMu serializes SaveContinue and SaveEnd: a Saver is not safe
	// for concurrent use.
	saveMu sync.Mutex

	// sendMu guards the outgoing side: the send queue, the packet
	// objects, and the gate that stops writes (paused.go).
	sendMu sync.Mutex
	sendEP *endpoint
	txHold bool // the receive loop is in a batch and will commit
	// gate: what may reach the outgoing ring (paused.go). It is the send
	// side's own copy of "paused or being saved", read on every send and
	// completion under sendMu, which they hold anyway.
	gate      txGate
	held      []*Packet // completions held while the gate is not open
	qHead     *qitem
	qTail     *qitem
	txSeq     uint32
	outSlots  []*OutPacket
	outFree   []uint32
	outLive   int
	syncFree  []*OutPacket
	scratch   ring.OutPacket
	st        stats          // counters: see stats.go for who writes what
	diag      stall          // CheckStall's marks, under its own lock (stall.go)
	restoring *restoredState // the state whose packets the restore-packet callback brings back (OutPacket.Restore)

	// mu guards the lifecycle state, the endpoint, the bindings and the
	// incoming side.
	mu   sync.Mutex
	cond sync.Cond // on mu: endpoint, outstanding and receive-loop changes
	// ph is where the channel is in its diagram; only moveLocked changes
	// it.
	ph phase
	// flow is the incoming queue's state within an open phase; only
	// flowLocked changes it.
	flow       flow
	ep         *endpoint
	subs       map[*Channel]struct{} // enabled subchannels of this primary
	openCancel context.CancelFunc

	// server binding
	offered *host.Offered
	hc      *host.Channel
	mapped  map[uint32]bool
	remap   map[uint32]bool // mapped GPADLs whose view the VSP has not rebuilt yet
	// client binding
	gch    *guest.Channel
	gpadls map[uint32]clientGpadl
	// xsets are the transfer page sets (both sides), forgotten when the
	// channel closes.
	xsets map[uint16]*TransferPageSet
	// xscratch is the receive goroutine's buffer for checking transfer
	// ranges for overlaps.
	xscratch []TransferRange
	// xferDropReason says why the last transfer-page packet was dropped.
	xferDropReason string

	// The incoming packets.
	inAll  []*Packet
	inFree []*Packet
	// rxReserve is the packet objects the receive loop took from inFree
	// for a batch's next packets, one lock for up to reserveMax of them:
	// counted outstanding, state pktReserved, owned by the loop, and back
	// in inFree when its batch ends (endBatch).
	rxReserve     []*Packet
	rxReserveNext int // how many the loop takes next (takePacket)
	outstanding   int
	// restarts are the outstanding packets marked SetRestartable, which
	// a Pause does not wait for and a save records; redo are those a
	// restore brought back, indicated again when the channel goes live.
	restarts []*Packet
	redo     []*restartRecord
	// idleWaiters counts waitIdle calls under way: only they need to hear
	// that outstanding reached zero.
	idleWaiters int
	quota       int

	// The receive loop's handshake with the lifecycle. These are facts
	// about the loop, not about the channel's state: each can be true in
	// any open phase and flow (a loop parks, blocks on the pool or fails
	// whatever the lifecycle says), so they are not part of phase or flow.
	rxParked  bool // the loop acknowledged that flow left live (or exits)
	rxGone    bool // the loop parked for good: its event is closed
	rxExit    bool // the loop is to end (closeOpen, Relinquish)
	rxBlocked bool // the loop waits for a packet object or quota to free
	// rxFailed: the incoming queue stopped for good (a corrupt ring, a
	// packet past the limits, Fail) until the channel opens again; a
	// lifecycle call does not undo it. rxStopErr says why, for Stats;
	// rxStopReason is its detail, formatted once.
	rxFailed     bool
	rxFailedA    atomic.Bool // rxFailed, for the receive loop's look between packets
	rxStopErr    error
	rxStopReason string
	rxStopTold   bool // the incoming-stopped callback ran for this open

	// Save and restore (save.go, restore.go). A save under way is not a
	// lifecycle state: the channel stays Paused (or Stopped, Enabled)
	// through it, and the lifecycle calls consult it (refuseInSave) on
	// top of the phase.
	saver  *savedstate.Saver
	saving bool // SaveBegin is taking its snapshot
	// saveStale: the channel changed in a way no caller can refuse (the
	// guest closed it) while a save was open; SaveContinue fails.
	saveStale bool
	rest      *savedstate.Restorer
	restored  *restoredState // applied by a restore, taken by Enable
}

// endpoint is an open channel's rings, events and memory.
type endpoint struct {
	r      *ring.Reader
	w      *ring.Writer
	in     *transport.Event // the peer signals us
	out    *transport.Event // we signal the peer
	mem    *guestmem.Memory
	gpadls *host.GpadlTable // server only
	rxDone chan struct{}
	rxErr  error
	pkt    ring.Packet
	cap    epTap  // server only: set before the endpoint is published
	capTx  []byte // a written packet's type header, for the capture (sendMu)
	capRx  []byte // a read packet's type header, for the capture (receive loop)
}

type clientGpadl struct {
	ranges   []gpa.Range
	readOnly bool
}

// NewServer allocates a server (VSP) channel: KMCL VmbChannelAllocate with
// IsServer. It starts disabled.
func NewServer() *Channel { return newChannel(true) }

// NewClient allocates a client (VSC) channel. It starts disabled.
func NewClient() *Channel { return newChannel(false) }

func newChannel(server bool) *Channel {
	c := &Channel{server: server}
	c.cfg = config{
		maxPacketSize:  DefaultMaxPacketSize,
		maxPacketCount: DefaultMaxPacketCount,
		maxExtSize:     DefaultMaxExternalSize,
		maxExtChain:    DefaultMaxExternalChain,
		inPages:        DefaultRingPages,
		outPages:       DefaultRingPages,
	}
	c.cond.L = &c.mu
	c.dev.c = c
	c.spaceWake = make(chan struct{}, 1)
	return c
}

// IsServer reports whether c is a server channel.
func (c *Channel) IsServer() bool { return c.server }

// Interface is the interface type and instance: as configured, or, on an
// open client channel, as offered (KMCL VmbChannelGetInterfaceInstance).
func (c *Channel) Interface() (typ, instance protocol.GUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gch != nil {
		return c.gch.Offer.InterfaceType, c.gch.Offer.InterfaceInstance
	}
	return c.cfg.ifType, c.cfg.ifInst
}

// MMIO is the MMIO megabytes of the offer: configured (server) or offered
// (open client). No MMIO space is allocated by this host.
func (c *Channel) MMIO() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gch != nil {
		return c.gch.Offer.MMIOMegabytes
	}
	return c.cfg.mmio
}

// ChannelID is the VMBus channel id while the channel is open, else 0.
func (c *Channel) ChannelID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.hc != nil:
		return c.hc.ChannelID
	case c.gch != nil:
		return c.gch.Offer.ChannelID
	}
	return 0
}
