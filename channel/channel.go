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
// It is recorded and, on a server, offers the channel in named-pipe mode;
// the pipe framing of payloads is not implemented (see docs/KMCL.md).
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

// State is a channel's lifecycle state; see the package documentation for
// the state machines.
type State int

// States. Servers use Disabled, Enabled, Started, Stopped, Paused, Active
// (and Closed for a subchannel closed with its primary); clients
// Disabled, Enabled, Opened, Closed, Paused, Active.
const (
	StateDisabled State = iota
	StateEnabled
	StateStarted
	StateStopped
	StateOpened
	StatePaused
	StateActive
	StateClosed
)

var stateNames = [...]string{"Disabled", "Enabled", "Started", "Stopped", "Opened", "Paused", "Active", "Closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(?)"
}

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

// config is what the Set* functions configure; it changes only while the
// channel is disabled.
type config struct {
	maxPacketSize   int
	maxPacketCount  int
	maxExtSize      int
	maxExtChain     int
	contextSize     int
	process         ProcessPacketFunc
	processComplete ProcessingCompleteFunc
	callbacks       StateCallbacks
	name            string
	nameSet         bool
	flags           ChannelFlags
	primary         *Channel
	subIndex        uint16
	blocking        bool
	inPlace         bool
	// client
	inPages, outPages int
	ifType, ifInst    protocol.GUID
	client            *guest.Client
	targetVP          uint32
	// server
	serverFlags        ServerFlags
	mmio, mmioOptional uint16
	userDefined        protocol.UserDefined
	guest              *host.Guest
	savePacket         SavePacketFunc
	restorePacket      RestorePacketFunc
}

// Channel is one endpoint of a VMBus channel with the KMCL lifecycle:
// a server (VSP, host side) or client (VSC, guest side) channel.
//
// Configuration (Set*) is allowed only while the channel is disabled.
// Lifecycle calls (Enable, Disable, Pause, Start, Cleanup) may come from
// any goroutine but not concurrently with each other. Packet functions
// are safe for concurrent use.
type Channel struct {
	server bool
	cfg    config
	user   atomic.Value // SetUserContext

	// life serializes lifecycle calls; inCallback is set while a state
	// callback runs.
	life       sync.Mutex
	inCallback atomic.Int32
	workerID   atomic.Uint64 // goid of the worker goroutine, once it ran a callback; else 0

	mu      sync.Mutex
	cond    sync.Cond // on mu: endpoint, outstanding and receive-loop changes
	enabled bool
	open    bool // the channel is open and Opened succeeded
	started bool // packets may flow once open (server: Start called)
	paused  bool
	closed  bool // client: the open channel went away; subchannel: closed with its primary
	cleaned bool
	// pauseArmed: Pause was called while disabled, so the next Enable
	// brings the channel up paused (KMCL VmbChannelPause).
	pauseArmed bool
	ep         *endpoint
	subs       map[*Channel]struct{} // enabled subchannels of this primary

	// worker
	ctl           chan request
	workerDone    chan struct{}
	work          workQueue
	lost          chan struct{} // the receive loop lost its event
	primaryClosed chan struct{}
	released      chan struct{} // Release went live: PostStarted is due
	idle          chan struct{} // outstanding dropped to 0
	openCancel    context.CancelFunc

	// server binding
	dev     serverDevice // what the host calls (Offer, Reattach): one per channel, not one per call
	offered *host.Offered
	hc      *host.Channel
	mapped  map[uint32]bool
	// client binding
	gch    *guest.Channel
	gpadls map[uint32]clientGpadl

	// incoming, under mu
	inAll       []*Packet
	inFree      []*Packet
	outstanding int
	// restarts are the outstanding packets marked SetRestartable, which
	// a Pause does not wait for and a save records; redo are those a
	// restore brought back, indicated again when the channel goes live.
	restarts []*Packet
	redo     []*restartRecord
	// waitRestarts: Pause waits for restartable packets too
	// (SetPauseWaitsForRestartable).
	waitRestarts atomic.Bool
	// idleWaiters counts waitIdle calls under way: only they need to hear
	// that outstanding reached zero.
	idleWaiters int
	quota       int
	rxFailed    bool
	// rxStopErr says why rxFailed was set, for Stats; rxStopReason is
	// its detail, formatted once.
	rxStopErr    error
	rxStopReason string
	rxWant       bool // the receive loop may indicate packets
	rxExit       bool
	rxParked     bool        // the receive loop acknowledged !rxWant
	rxStopped    bool        // StopIndications cleared rxWant; Pause finishes the job
	rxHeld       bool        // started by StartHeld: Release makes it live
	rxHeldPost   bool        // Release is to run PostStarted (Started ran)
	rxBlocked    bool        // the receive loop waits for a packet or quota to free
	rxRun        atomic.Bool // mirrors rxWant for the receive loop's fast path
	// rxSleeping is set while the receive loop waits for its event, past
	// every decision to read: a loop asleep when rxWant goes false is
	// parked already (it looks at rxWant, under mu, before it reads
	// again), so it need not be woken to say so.
	rxSleeping atomic.Bool

	// outgoing, under sendMu
	sendMu sync.Mutex
	sendEP *endpoint
	txHold bool // the receive loop is in a batch and will commit
	// holdDone: the channel is paused, and a completion (only a
	// restartable packet's can come) waits in held, not in the ring.
	holdDone bool
	held     []*Packet
	qHead    *qitem
	qTail    *qitem
	txSeq    uint32
	outSlots []*OutPacket
	outFree  []uint32
	outLive  int
	syncFree []*OutPacket
	scratch  ring.OutPacket
	st       stats // counters: see stats.go for who writes what

	// txStopped: a server channel is paused or being saved, and nothing
	// at all is written to its outgoing ring (paused.go). Under sendMu;
	// it implies holdDone.
	txStopped bool

	// save/restore (save.go, restore.go), under mu
	saver  *savedstate.Saver
	saving bool
	// saveStale: the channel changed in a way no caller can refuse (the
	// guest closed it) while a save was open; SaveContinue fails.
	saveStale bool
	// saveOpen mirrors saving || saver != nil for the send paths, which
	// read it under sendMu without taking mu.
	saveOpen atomic.Bool
	// saveMu serializes SaveContinue and SaveEnd: a Saver is not safe
	// for concurrent use.
	saveMu   sync.Mutex
	rest     *savedstate.Restorer
	restored *restoredState  // applied by a restore, taken by Enable
	remap    map[uint32]bool // mapped GPADLs whose view the VSP has not rebuilt yet
	// restoring is the state whose packets the restore-packet callback
	// is bringing back (OutPacket.Restore), under sendMu.
	restoring *restoredState
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
	return c
}

// IsServer reports whether c is a server channel.
func (c *Channel) IsServer() bool { return c.server }

// State is the channel's current state.
func (c *Channel) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked()
}

func (c *Channel) stateLocked() State {
	switch {
	case !c.enabled:
		return StateDisabled
	case c.closed:
		return StateClosed
	case c.open && c.started:
		return StateActive
	case c.paused:
		return StatePaused
	case c.open && c.server:
		return StateStopped
	case c.open:
		return StateOpened
	case c.started && c.server:
		return StateStarted
	}
	return StateEnabled
}

// setter runs fn if the channel is disabled, else fails with
// StatusInvalidParameter1.
func (c *Channel) setter(what string, fn func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enabled || c.cleaned {
		return fail(StatusInvalidParameter1, "%s: channel is %v", what, c.stateLocked())
	}
	return fn()
}

func (c *Channel) serverOnly(what string) error {
	if !c.server {
		return fail(StatusInvalidParameter, "%s: server channels only", what)
	}
	return nil
}

func (c *Channel) clientOnly(what string) error {
	if c.server {
		return fail(StatusInvalidParameter, "%s: client channels only", what)
	}
	return nil
}

// SetMaxPacketSize sets the largest incoming payload (KMCL
// VmbChannelInitSetMaximumPacketSize). 0 is invalid, and so is a size past
// the MTU: StatusInvalidParameter2, as the KMCL page documents for its
// PacketSize. A larger incoming packet is treated as malformed (as
// PacketFail).
func (c *Channel) SetMaxPacketSize(n int) error {
	return c.setter("max packet size", func() error {
		if n <= 0 || n > MTU {
			return fail(StatusInvalidParameter2, "max packet size %d", n)
		}
		c.cfg.maxPacketSize = n
		return nil
	})
}

// SetMaxPacketCount sets how many incoming packets may be outstanding at
// once (KMCL VmbChannelInitSetMaximumPacketCount): the size of the pool
// of Packet objects.
func (c *Channel) SetMaxPacketCount(n int) error {
	return c.setter("max packet count", func() error {
		if n <= 0 || n > maxPacketCountLimit {
			return fail(StatusInvalidParameter, "max packet count %d", n)
		}
		c.cfg.maxPacketCount = n
		return nil
	})
}

// SetMaxExternalData bounds the external data of an incoming packet: bytes
// and page count (KMCL VmbChannelInitSetMaximumExternalData). Zero (or
// less) is invalid in either: StatusInvalidParameter2 for size,
// StatusInvalidParameter3 for chainLength, the codes the KMCL page gives
// for DataSize and ChainLength.
func (c *Channel) SetMaxExternalData(size, chainLength int) error {
	return c.setter("max external data", func() error {
		if size <= 0 {
			return fail(StatusInvalidParameter2, "max external data %d bytes", size)
		}
		if chainLength <= 0 {
			return fail(StatusInvalidParameter3, "max external data chain of %d pages", chainLength)
		}
		c.cfg.maxExtSize, c.cfg.maxExtChain = size, chainLength
		return nil
	})
}

// SetPacketContextSize gives every incoming Packet a zeroed context area of
// n bytes (KMCL client context size): Packet.Context.
func (c *Channel) SetPacketContextSize(n int) error {
	return c.setter("packet context size", func() error {
		if n < 0 || n > maxContextSize {
			return fail(StatusInvalidParameter, "context size %d", n)
		}
		c.cfg.contextSize = n
		return nil
	})
}

// SetProcessPacketCallbacks sets the incoming-packet callbacks (KMCL
// VmbChannelInitSetProcessPacketCallbacks); complete may be nil.
func (c *Channel) SetProcessPacketCallbacks(process ProcessPacketFunc, complete ProcessingCompleteFunc) error {
	return c.setter("process packet callbacks", func() error {
		c.cfg.process, c.cfg.processComplete = process, complete
		return nil
	})
}

// SetStateCallbacks sets the state-change callbacks (KMCL
// VmbChannelInitSetStateChangeCallbacks).
func (c *Channel) SetStateCallbacks(cb StateCallbacks) error {
	return c.setter("state callbacks", func() error {
		c.cfg.callbacks = cb
		return nil
	})
}

// SetFriendlyName names the channel, once (KMCL
// VmbChannelInitSetFriendlyName).
func (c *Channel) SetFriendlyName(name string) error {
	return c.setter("friendly name", func() error {
		if c.cfg.nameSet {
			return fail(StatusInvalidParameter, "friendly name set already")
		}
		c.cfg.name, c.cfg.nameSet = name, true
		return nil
	})
}

// FriendlyName is the name SetFriendlyName gave.
func (c *Channel) FriendlyName() string { return c.cfg.name }

// SetFlags sets the channel flags (KMCL VmbChannelInitSetFlags). Unknown
// bits fail with StatusInvalidParameter2, as the KMCL page documents.
func (c *Channel) SetFlags(f ChannelFlags) error {
	return c.setter("flags", func() error {
		if f&^ChannelFlagIsPipe != 0 {
			return fail(StatusInvalidParameter2, "unknown channel flags %#x", uint32(f))
		}
		c.cfg.flags = f
		return nil
	})
}

// SetPrimary makes c subchannel index (1 or more) of primary, a channel of
// the same kind (KMCL VmbChannelInitSetPrimaryChannel / subchannel index).
// c can then be enabled only while primary is open, and closes with it.
func (c *Channel) SetPrimary(primary *Channel, index uint16) error {
	return c.setter("primary channel", func() error {
		if primary == nil || primary == c || primary.server != c.server || index == 0 || primary.cfg.primary != nil {
			return fail(StatusInvalidParameter, "bad primary channel or subchannel index %d", index)
		}
		c.cfg.primary, c.cfg.subIndex = primary, index
		return nil
	})
}

// SetBlockingProcessing moves ProcessPacket and ProcessingComplete to the
// channel's worker goroutine, where they may block (KMCL
// VmbChannelInitSetProcessingAtPassive). The receive goroutine keeps
// handling completions meanwhile.
func (c *Channel) SetBlockingProcessing(on bool) error {
	return c.setter("blocking processing", func() error {
		c.cfg.blocking = on
		return nil
	})
}

// SetInPlacePayloads makes ProcessPacket see a packet's payload where it
// lies in the incoming ring, instead of a copy in the Packet, whenever the
// payload is in one piece (a packet that wraps around the ring's end is
// still copied). It saves a copy of every packet, which is most of the
// receive cost of large packets, and binds the driver to three rules:
//
//   - The payload slice, and Packet.Payload, are valid only until
//     ProcessPacket returns. A packet completed later must not be read
//     after ProcessPacket returned; copy what is needed first.
//   - The peer can rewrite ring bytes at any time: read each byte once
//     (copy it, then parse the copy) wherever the peer is not trusted.
//     Passing the bytes on unparsed (echo) or checking them once (a
//     checksum) is safe.
//   - DeferToPassive must be called inside ProcessPacket: it copies the
//     payload into the Packet before the worker sees it.
//
// It does not apply with SetBlockingProcessing, whose packets are read on
// another goroutine after the ring batch ended. Init setter: valid only
// while disabled.
func (c *Channel) SetInPlacePayloads(on bool) error {
	return c.setter("in-place payloads", func() error {
		c.cfg.inPlace = on
		return nil
	})
}

// SetRingPages sets the pages of the client's incoming and outgoing rings,
// control page included (KMCL VmbClientChannelInitSetRingBufferPageCount).
func (c *Channel) SetRingPages(incoming, outgoing int) error {
	return c.setter("ring pages", func() error {
		if err := c.clientOnly("ring pages"); err != nil {
			return err
		}
		if incoming < 2 || outgoing < 2 {
			return fail(StatusInvalidParameter, "ring pages %d, %d: at least 2 each", incoming, outgoing)
		}
		c.cfg.inPages, c.cfg.outPages = incoming, outgoing
		return nil
	})
}

// SetInterface sets the interface: on a client the target offer (the zero
// instance matches any; KMCL VmbClientChannelInitSetTargetPnp), on a server
// the interface id offered (KMCL VmbServerChannelInitSetTargetInterfaceId).
func (c *Channel) SetInterface(typ, instance protocol.GUID) error {
	return c.setter("interface", func() error {
		c.cfg.ifType, c.cfg.ifInst = typ, instance
		return nil
	})
}

// SetTargetProcessor names the virtual processor a client channel wants
// its interrupts on (KMCL VmbClientChannelInitSetTargetProcessor); it goes
// into OpenChannel. Signals here are events, so the host only records it.
func (c *Channel) SetTargetProcessor(vp uint32) error {
	return c.setter("target processor", func() error {
		if err := c.clientOnly("target processor"); err != nil {
			return err
		}
		c.cfg.targetVP = vp
		return nil
	})
}

// SetClient names the guest bus connection a client channel uses. Disable
// the channel before closing the client: closing it unmaps the rings.
func (c *Channel) SetClient(cl *guest.Client) error {
	return c.setter("client", func() error {
		if err := c.clientOnly("client"); err != nil {
			return err
		}
		c.cfg.client = cl
		return nil
	})
}

// SetGuest names the VM a server channel is offered to (KMCL
// VmbServerChannelInitSetVmbusHandle): a *host.Guest from
// host.Config.OnGuest.
func (c *Channel) SetGuest(g *host.Guest) error {
	return c.setter("guest", func() error {
		if err := c.serverOnly("guest"); err != nil {
			return err
		}
		c.cfg.guest = g
		return nil
	})
}

// SetServerFlags sets the server flags (KMCL VmbServerChannelInitSetFlags).
// Unknown bits fail with StatusInvalidParameter2, as the KMCL page
// documents.
func (c *Channel) SetServerFlags(f ServerFlags) error {
	return c.setter("server flags", func() error {
		if err := c.serverOnly("server flags"); err != nil {
			return err
		}
		if f&^0x1F != 0 {
			return fail(StatusInvalidParameter2, "unknown server flags %#x", uint32(f))
		}
		c.cfg.serverFlags = f
		return nil
	})
}

// SetMMIO sets the MMIO space the offer asks for, in megabytes (KMCL
// VmbServerChannelInitSetMmioMegabytes); optional is recorded only (the
// offer message of the versions this host speaks carries it, but the host
// does not allocate MMIO). Both zero is StatusInvalidParameter, as the
// KMCL page documents: one of them must be greater than zero.
func (c *Channel) SetMMIO(megabytes, optional uint16) error {
	return c.setter("MMIO", func() error {
		if err := c.serverOnly("MMIO"); err != nil {
			return err
		}
		if megabytes == 0 && optional == 0 {
			return fail(StatusInvalidParameter, "MMIO of 0 MB and 0 MB optional")
		}
		c.cfg.mmio, c.cfg.mmioOptional = megabytes, optional
		return nil
	})
}

// SetUserDefined sets the offer's 120 user-defined bytes (server).
func (c *Channel) SetUserDefined(u protocol.UserDefined) error {
	return c.setter("user defined", func() error {
		if err := c.serverOnly("user defined"); err != nil {
			return err
		}
		c.cfg.userDefined = u
		return nil
	})
}

// SetUserContext stores a value for the driver (KMCL per-channel context).
func (c *Channel) SetUserContext(v any) { c.user.Store(&v) }

// UserContext is the value SetUserContext stored, or nil.
func (c *Channel) UserContext() any {
	if p, ok := c.user.Load().(*any); ok {
		return *p
	}
	return nil
}

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
