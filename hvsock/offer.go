package hvsock

import (
	"errors"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/guest"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/pipe"
	"github.com/govmbus/govmbus/protocol"
)

// Ring sizes of a guest's connection channel, per direction, the control
// page included (DEVICES.md §2.1). Hosts before protocol 5.0 take only
// 6 pages; from 5.0 a guest may ask for up to 64, as Linux's hv_sock
// does for large socket buffers. A 6-page ring holds four 4 KiB packets:
// the writer waits for the reader's signal every four packets; 64 pages
// hold fifteen 16 KiB packets, nearly four 64 KiB writes.
const (
	ringPagesLegacy = 6
	ringPages       = 64
)

// guestRingPages is the ring size a guest at protocol v asks for.
func guestRingPages(v protocol.Version) int {
	if v < protocol.VersionWin10RS31 {
		return ringPagesLegacy
	}
	return ringPages
}

// parameterVersion is the offer's hvsock parameter version: 1, Windows 10
// RS5's layout, as OpenVMM sends.
const parameterVersion = 1

// events are what a connection's channel tells its owner.
type events struct {
	open   chan struct{} // packets flow (PostStarted)
	closed chan struct{} // the channel closed (guest close, rescind, guest gone)
}

func newEvents() *events {
	return &events{open: make(chan struct{}), closed: make(chan struct{})}
}

// closeOnce closes ch unless it is closed; only the channel's worker
// calls it (a state callback), one at a time.
func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// serverChannel makes the host's channel of one connection to g: offered
// with interface type service and instance endpoint, as a byte-mode
// pipe with the TLNPI provider flag (flags 0x2011) and the hvsock fields
// (DEVICES.md §2.4), writing packets of up to 16384 bytes, what Linux
// accepts. It is configured, not enabled.
func serverChannel(g *host.Guest, service, endpoint protocol.GUID, forGuestAccept bool, maxBuffered int, ev *events) (*channel.Channel, stream, error) {
	ch := channel.NewServer()
	var ud protocol.UserDefined
	ud.SetHVSock(protocol.HVSockOffer{ForGuestAccept: forGuestAccept, ParameterVersion: parameterVersion})
	err := errors.Join(
		ch.SetGuest(g),
		ch.SetInterface(service, endpoint),
		ch.SetFriendlyName("hvsock"),
		ch.SetFlags(channel.ChannelFlagIsPipe),
		ch.SetServerFlags(channel.ServerEnumerateDeviceInterface|channel.ServerOfferAsPipe|channel.ServerTLNPIProviderOffer),
		ch.SetUserDefined(ud),
		ch.SetPipeMode(channel.PipeByte),
	)
	if err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, nil, err
	}
	s, err := attachStream(ch, pipe.MaxData, maxBuffered, ev)
	if err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, nil, err
	}
	return ch, s, nil
}

// clientChannel makes the guest's channel of the connection offered as o,
// opened with guestRingPages' rings and all-zero user data (DEVICES.md
// §2.5), writing packets of up to 16384 bytes: the pipe's maximum, which
// hosts accept (OpenVMM's maximum pipe packet), where Linux writes 4088.
// It is configured, not enabled.
func clientChannel(cl *guest.Client, o guest.Offer, maxBuffered int, ev *events) (*channel.Channel, stream, error) {
	ch := channel.NewClient()
	err := errors.Join(
		ch.SetClient(cl),
		ch.SetInterface(o.InterfaceType, o.InterfaceInstance),
		ch.SetFriendlyName("hvsock"),
		ch.SetFlags(channel.ChannelFlagIsPipe),
		ch.SetRingPages(guestRingPages(cl.Version()), guestRingPages(cl.Version())),
	)
	if err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, nil, err
	}
	s, err := attachStream(ch, pipe.MaxData, maxBuffered, ev)
	if err != nil {
		ch.Cleanup() //nolint:errcheck // the first error matters
		return nil, nil, err
	}
	return ch, s, nil
}
