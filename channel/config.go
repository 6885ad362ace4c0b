package channel

import (
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
)

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
	incomingStopped IncomingStoppedFunc
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
	pipeMode           PipeMode
	pipeModeSet        bool
	guest              *host.Guest
	savePacket         SavePacketFunc
	restorePacket      RestorePacketFunc
	saveState          SaveStateFunc
	restoreState       RestoreStateFunc
}

// setter runs fn if the channel is disabled, else fails with
// StatusInvalidParameter1; on a channel holding a restored state it fails
// with StatusInvalidDeviceState.
func (c *Channel) setter(what string, fn func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ph.disabled() {
		return fail(StatusInvalidParameter1, "%s: channel is %v", what, c.ph.public())
	}
	if c.restored != nil {
		// RestoreFromBuffer checked the state against the configuration
		// as it was (identity, pool sizes, callbacks); a change now would
		// void those checks.
		return fail(StatusInvalidDeviceState, "%s: the channel holds a restored state; configure it before RestoreFromBuffer", what)
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

// IncomingStoppedFunc hears that a channel's incoming queue stopped for
// good, until the channel opens again: err says why, as Stats'
// IncomingErr does (a packet past the channel's limits, a type this
// layer does not take, a corrupt ring, a Fail).
type IncomingStoppedFunc func(c *Channel, err error)

// SetIncomingStoppedCallback sets fn, which runs once per open on the
// receive goroutine when the incoming queue stops for good (for a Fail,
// at the loop's next turn). KMCL has no such callback: a driver there
// sees the packets stop; a Go driver that waits for data (a pipe's Read)
// learns the reason instead of waiting for ever.
func (c *Channel) SetIncomingStoppedCallback(fn IncomingStoppedFunc) error {
	return c.setter("incoming stopped callback", func() error {
		c.cfg.incomingStopped = fn
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
// Unless SetPoll set a budget already, the channel takes the client's
// (guest.Config.ChannelPoll); one SetPoll refuses fails SetClient.
func (c *Channel) SetClient(cl *guest.Client) error {
	return c.setter("client", func() error {
		if err := c.clientOnly("client"); err != nil {
			return err
		}
		if cl != nil && c.pollMax.Load() == 0 {
			if err := c.SetPoll(cl.ChannelPoll()); err != nil {
				return err
			}
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
