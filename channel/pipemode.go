package channel

import (
	"strconv"

	"github.com/govmbus/govmbus/protocol"
)

// PipeMode is how a pipe channel's payloads are read: the u32 a pipe
// offer carries at the start of its user-defined area (DEVICES.md §1.1).
// The framing is the same in both modes (package pipe speaks it); the
// mode only says whether packet boundaries mean anything.
type PipeMode uint32

// Pipe modes, as on the wire.
const (
	// PipeByte: a byte stream; packet boundaries carry no meaning.
	PipeByte PipeMode = protocol.PipeModeByte
	// PipeMessage: one packet is one message, delivered whole.
	PipeMessage PipeMode = protocol.PipeModeMessage
)

func (m PipeMode) String() string {
	switch m {
	case PipeByte:
		return "byte"
	case PipeMessage:
		return "message"
	}
	return "pipe-mode-" + strconv.FormatUint(uint64(m), 10)
}

// SetPipeMode makes a server channel a pipe offered in mode m: the offer
// carries the named-pipe flag and m in the first four bytes of its
// user-defined area, over what SetUserDefined put there. KMCL's IS_PIPE
// and OFFER_AS_PIPE flags have no mode of their own: without
// SetPipeMode they set only the flag, and the mode on the wire is the
// first u32 of the user-defined bytes, byte mode (0) unless the caller
// wrote otherwise. A mode other than PipeByte or PipeMessage fails with
// StatusInvalidParameter2.
func (c *Channel) SetPipeMode(m PipeMode) error {
	return c.setter("pipe mode", func() error {
		if err := c.serverOnly("pipe mode"); err != nil {
			return err
		}
		if m != PipeByte && m != PipeMessage {
			return fail(StatusInvalidParameter2, "pipe mode %d", uint32(m))
		}
		c.cfg.pipeMode, c.cfg.pipeModeSet = m, true
		return nil
	})
}

// PipeMode reports whether the channel is a pipe and in which mode: on
// an open client channel as the offer says (the named-pipe flag, and the
// mode at the start of its user-defined area, which the host chose and a
// client must not trust to be one of the two known values); otherwise as
// configured (SetPipeMode, SetFlags, SetServerFlags, SetUserDefined).
func (c *Channel) PipeMode() (mode PipeMode, isPipe bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gch != nil {
		o := &c.gch.Offer
		return PipeMode(o.UserDefined.PipeMode()), o.Flags&protocol.OfferFlagNamedPipeMode != 0
	}
	cfg := &c.cfg
	isPipe = cfg.pipeModeSet || cfg.flags&ChannelFlagIsPipe != 0 || cfg.serverFlags&ServerOfferAsPipe != 0
	if cfg.pipeModeSet {
		return cfg.pipeMode, isPipe
	}
	return PipeMode(cfg.userDefined.PipeMode()), isPipe
}

// offerPipe applies the pipe configuration to an offer's flags and
// user-defined area.
func (cfg *config) offerPipe(flags *protocol.OfferFlags, ud *protocol.UserDefined) {
	if cfg.serverFlags&ServerOfferAsPipe != 0 || cfg.flags&ChannelFlagIsPipe != 0 || cfg.pipeModeSet {
		*flags |= protocol.OfferFlagNamedPipeMode
	}
	if cfg.pipeModeSet {
		ud.SetPipeMode(uint32(cfg.pipeMode))
	}
}
