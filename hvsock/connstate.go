package hvsock

import (
	"bytes"
	"fmt"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

// connStateVersion is the layout of an encoded ConnState.
const connStateVersion = 1

// Bounds of a ConnState, so that one fits a saved-state record
// (savedstate.MaxBody) with room to spare. The bytes from the guest are
// what the pipe held unread and one splice buffer: the pipe holds
// Config.MaxBuffered and, after a pause that was resumed, one packet
// more; a predecessor before that could hold twice MaxBuffered then,
// which the bound still takes. Those to the guest are one splice buffer.
const (
	MaxCarriedToLocal = 768 << 10
	MaxCarriedToGuest = spliceBuffer
	maxCarriedChannel = 64 << 10
	maxCarriedRoute   = 4096
)

// ConnState is one relayed connection as a servicing carries it to the
// successor: which channel it is, the channel's saved state, the bytes
// on their way in each direction, and how far each direction's end got.
// Everything in it came from a predecessor: DecodeConnState checks it
// whole.
type ConnState struct {
	// Route is the relay's (Relay.Key): the successor's relay of the
	// same key takes the connection back.
	Route string
	// Service and Endpoint are the offer's interface type and instance;
	// ForGuestAccept marks a host-initiated connection.
	Service, Endpoint protocol.GUID
	ForGuestAccept    bool
	// ToLocal are bytes the guest sent that the local socket has not
	// taken; GuestEnded says the guest's FIN came after them, LocalShut
	// that it was passed on (the local socket's write side is shut).
	ToLocal               []byte
	GuestEnded, LocalShut bool
	// ToGuest are bytes the local socket sent that the guest has not
	// been written; LocalEnded says the local socket's end came after
	// them, GuestShut that it was passed on (the FIN was sent).
	ToGuest               []byte
	LocalEnded, GuestShut bool
	// Channel is the connection's channel state (channel.SaveChunks,
	// joined).
	Channel []byte
}

// Flags of an encoded ConnState.
const (
	csForGuestAccept = 1 << iota
	csGuestEnded
	csLocalShut
	csLocalEnded
	csGuestShut
)

// Encode appends the state's encoding to e.
func (s *ConnState) Encode(e *savedstate.Encoder) {
	f := flag(s.ForGuestAccept, csForGuestAccept) | flag(s.GuestEnded, csGuestEnded) | flag(s.LocalShut, csLocalShut) |
		flag(s.LocalEnded, csLocalEnded) | flag(s.GuestShut, csGuestShut)
	e.U8(connStateVersion).U8(f).Bytes([]byte(s.Route)).Raw(s.Service[:]).Raw(s.Endpoint[:])
	e.Bytes(s.ToLocal).Bytes(s.ToGuest).Bytes(s.Channel)
}

// DecodeConnState reads what Encode wrote and checks it: the version,
// the flags and the bounds, and that the ends agree with the bytes (an
// end passed on has nothing before it still to pass, and a connection
// both of whose directions ended is not carried).
func DecodeConnState(b []byte) (*ConnState, error) {
	d := savedstate.NewDecoder(b)
	if v := d.U8(); v != connStateVersion && !d.Failed() {
		return nil, fmt.Errorf("hvsock: connection state version %d, this build reads %d", v, connStateVersion)
	}
	f := d.U8()
	s := &ConnState{Route: string(d.Bytes(maxCarriedRoute))}
	d.RawInto(s.Service[:])
	d.RawInto(s.Endpoint[:])
	s.ToLocal = d.Bytes(MaxCarriedToLocal)
	s.ToGuest = d.Bytes(MaxCarriedToGuest)
	s.Channel = d.Bytes(maxCarriedChannel)
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("hvsock: connection state: %w", err)
	}
	if f&^(csForGuestAccept|csGuestEnded|csLocalShut|csLocalEnded|csGuestShut) != 0 {
		return nil, fmt.Errorf("hvsock: connection state flags %#x", f)
	}
	s.ForGuestAccept, s.GuestEnded, s.LocalShut = f&csForGuestAccept != 0, f&csGuestEnded != 0, f&csLocalShut != 0
	s.LocalEnded, s.GuestShut = f&csLocalEnded != 0, f&csGuestShut != 0
	switch {
	case s.LocalShut && (!s.GuestEnded || len(s.ToLocal) > 0):
		return nil, fmt.Errorf("hvsock: connection state: the guest's end passed on before it came or before its bytes")
	case s.GuestShut && (!s.LocalEnded || len(s.ToGuest) > 0):
		return nil, fmt.Errorf("hvsock: connection state: the local end passed on before it came or before its bytes")
	case s.LocalShut && s.GuestShut:
		return nil, fmt.Errorf("hvsock: connection state: both directions ended")
	case len(s.Channel) == 0:
		return nil, fmt.Errorf("hvsock: connection state without its channel's")
	}
	return s, nil
}

func flag(on bool, bit uint8) uint8 {
	if on {
		return bit
	}
	return 0
}

// saveChannel is a carried connection's channel state: its chunks joined,
// at most maxCarriedChannel bytes.
func saveChannel(ch *channel.Channel) ([]byte, error) {
	chunks, err := ch.SaveChunks(saveChunkSize)
	if err != nil {
		return nil, err
	}
	b := bytes.Join(chunks, nil)
	if len(b) > maxCarriedChannel {
		return nil, fmt.Errorf("hvsock: a connection's channel state of %d bytes, at most %d", len(b), maxCarriedChannel)
	}
	return b, nil
}

// addrs are the host end's local and remote addresses of the connection
// st is of, on guest g.
func (st *ConnState) addrs(g *host.Guest) (local, remote Addr) {
	local = Addr{VMID: VMIDWildcard, ServiceID: st.Service}
	remote = Addr{VMID: GuestVMID(g.ID()), ServiceID: st.Endpoint}
	if st.ForGuestAccept {
		local.ServiceID, remote.ServiceID = st.Endpoint, st.Service
	}
	return local, remote
}
