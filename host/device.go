package host

import (
	"github.com/govmbus/govmbus/capture"
	"github.com/govmbus/govmbus/guestmem"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/transport"
)

// OfferSpec is what the host tells every guest about a device in its
// OfferChannel message. The host adds the channel id, connection id and
// monitor fields itself.
type OfferSpec struct {
	InterfaceType, InterfaceInstance protocol.GUID
	SubchannelIndex                  uint16
	Flags                            protocol.OfferFlags
	MMIOMegabytes                    uint16
	UserDefined                      protocol.UserDefined
}

// Device is a VSP registered with the host. Every guest is offered one
// channel per device, and each guest's opens of that channel reach the same
// Device, so a Device must handle several Channels at once (one per guest).
//
// Open and Close are called from the control-plane goroutine of the guest
// concerned, never concurrently for the same Channel; calls for different
// guests may run concurrently.
type Device interface {
	// Offer describes the channel. It is called once, by New.
	Offer() OfferSpec
	// Open: a guest opened the channel; rings are mapped and events
	// handed over. An error fails the open (the guest sees a non-zero
	// status in OpenChannelResult) and Close is not called. Open must not
	// block on guest traffic: the guest's control plane waits for it.
	Open(ch *Channel) error
	// Close is called once per successful Open, when the guest closes,
	// disconnects, the offer is rescinded or the host shuts down. When it
	// returns, the device no longer touches the rings, memory or events;
	// the host unmaps and closes them right after.
	Close(ch *Channel)
}

// Channel is one guest's open channel as a Device sees it. The host fills it
// before Device.Open and owns every field: the device must not close the
// events or the memory, and must stop using all of it when Close returns.
type Channel struct {
	GuestID      uint64               // the host's number for the guest connection (Guest.ID)
	ChannelID    uint32               // 1..2047
	ConnectionID uint32               // as offered: channel id | SINT 2 << 12
	Offer        OfferSpec            // the device's offer
	Params       protocol.OpenChannel // the guest's OpenChannel message (a copy)
	Memory       *guestmem.Memory     // this guest's memory
	In           []byte               // guest→host ring region (control page + data), mapped writable
	Out          []byte               // host→guest ring region
	ToGuest      *transport.Event     // the host signals the guest
	FromGuest    *transport.Event     // the guest signals the host
	// Gpadls are the GPADLs this guest created on this channel. A device
	// maps one to reach the buffer behind it (see GpadlTable.Map).
	Gpadls *GpadlTable
	// Capture is the host's capture attachment (Host.Capture): a device
	// that reads or writes the rings records what crosses them there.
	Capture *capture.Tap
}
