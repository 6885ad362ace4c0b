package protocol

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

var le = binary.LittleEndian

// Sizes common to every message.
const (
	// HeaderSize is the {u32 type, u32 padding} header before every body.
	HeaderSize = 8
	// MaxMessageSize is the payload of one Hyper-V SynIC message: no
	// channel-management message can be longer.
	MaxMessageSize = 240
)

// MessageType is the u32 at offset 0 of every message.
type MessageType uint32

// The 29 channel-management message types. The numbering is the wire's;
// 0 is not a message.
const (
	TypeOfferChannel             MessageType = 1
	TypeRescindChannelOffer      MessageType = 2
	TypeRequestOffers            MessageType = 3
	TypeAllOffersDelivered       MessageType = 4
	TypeOpenChannel              MessageType = 5
	TypeOpenChannelResult        MessageType = 6
	TypeCloseChannel             MessageType = 7
	TypeGpadlHeader              MessageType = 8
	TypeGpadlBody                MessageType = 9
	TypeGpadlCreated             MessageType = 10
	TypeGpadlTeardown            MessageType = 11
	TypeGpadlTorndown            MessageType = 12
	TypeRelIDReleased            MessageType = 13
	TypeInitiateContact          MessageType = 14
	TypeVersionResponse          MessageType = 15
	TypeUnload                   MessageType = 16
	TypeUnloadComplete           MessageType = 17
	TypeOpenReservedChannel      MessageType = 18
	TypeCloseReservedChannel     MessageType = 19
	TypeCloseReservedResponse    MessageType = 20
	TypeTLConnectRequest         MessageType = 21
	TypeModifyChannel            MessageType = 22
	TypeTLConnectRequestResult   MessageType = 23
	TypeModifyChannelResponse    MessageType = 24
	TypeModifyConnection         MessageType = 25
	TypeModifyConnectionResponse MessageType = 26
	TypePause                    MessageType = 27
	TypePauseResponse            MessageType = 28
	TypeResume                   MessageType = 29

	maxType = TypeResume
)

// typeInfo is what the package knows about a type beyond its layout. The
// minimum versions and features are the ones OpenVMM's server enforces;
// InitiateContact and CloseReservedChannel have none because they may
// arrive before (or regardless of) a negotiated version.
var typeInfo = [maxType + 1]struct {
	name       string
	minVersion Version
	feature    FeatureFlags
	lengths    string
}{
	TypeOfferChannel:             {"OfferChannel", VersionV1, 0, "196"},
	TypeRescindChannelOffer:      {"RescindChannelOffer", VersionV1, 0, "12"},
	TypeRequestOffers:            {"RequestOffers", VersionV1, 0, "8"},
	TypeAllOffersDelivered:       {"AllOffersDelivered", VersionV1, 0, "8"},
	TypeOpenChannel:              {"OpenChannel", VersionV1, 0, "148 or 156"},
	TypeOpenChannelResult:        {"OpenChannelResult", VersionV1, 0, "20"},
	TypeCloseChannel:             {"CloseChannel", VersionV1, 0, "12"},
	TypeGpadlHeader:              {"GpadlHeader", VersionV1, 0, "20 + 8×n, n <= 27"},
	TypeGpadlBody:                {"GpadlBody", VersionV1, 0, "16 + 8×n, 1 <= n <= 28"},
	TypeGpadlCreated:             {"GpadlCreated", VersionV1, 0, "20"},
	TypeGpadlTeardown:            {"GpadlTeardown", VersionV1, 0, "16"},
	TypeGpadlTorndown:            {"GpadlTorndown", VersionV1, 0, "12"},
	TypeRelIDReleased:            {"RelIdReleased", VersionV1, 0, "12"},
	TypeInitiateContact:          {"InitiateContact", 0, 0, "40 or 56"},
	TypeVersionResponse:          {"VersionResponse", 0, 0, "16, 20 or 40"},
	TypeUnload:                   {"Unload", VersionV1, 0, "8"},
	TypeUnloadComplete:           {"UnloadComplete", VersionWin7, 0, "8"},
	TypeOpenReservedChannel:      {"OpenReservedChannel", VersionWin10, 0, "28"},
	TypeCloseReservedChannel:     {"CloseReservedChannel", 0, 0, "20"},
	TypeCloseReservedResponse:    {"CloseReservedResponse", VersionWin10, 0, "12"},
	TypeTLConnectRequest:         {"TlConnectRequest", VersionWin10, 0, "40 or 56"},
	TypeModifyChannel:            {"ModifyChannel", VersionWin10RS30, 0, "16"},
	TypeTLConnectRequestResult:   {"TlConnectRequestResult", VersionWin10RS30, 0, "44"},
	TypeModifyChannelResponse:    {"ModifyChannelResponse", VersionIron, 0, "16"},
	TypeModifyConnection:         {"ModifyConnection", VersionCopper, FeatureModifyConnection, "24"},
	TypeModifyConnectionResponse: {"ModifyConnectionResponse", VersionCopper, FeatureModifyConnection, "9"},
	TypePause:                    {"Pause", VersionCopper, FeaturePauseResume, "8"},
	TypePauseResponse:            {"PauseResponse", VersionCopper, FeaturePauseResume, "8"},
	TypeResume:                   {"Resume", VersionCopper, FeaturePauseResume, "8"},
}

// Known reports whether t is one of the 29 message types.
func (t MessageType) Known() bool { return t >= TypeOfferChannel && t <= maxType }

// String is the message's name as the wire documents spell it, or
// "MessageType(N)" for an unknown number.
func (t MessageType) String() string {
	if !t.Known() {
		return "MessageType(" + strconv.FormatUint(uint64(t), 10) + ")"
	}
	return typeInfo[t].name
}

// MinVersion is the oldest protocol version in which a peer may send t;
// zero means any time, even before a version is negotiated. A control plane
// should drop a message its negotiated version does not allow.
func (t MessageType) MinVersion() Version {
	if !t.Known() {
		return 0
	}
	return typeInfo[t].minVersion
}

// Feature is the Copper feature flag that must be negotiated before t may
// be sent, or zero if none is needed.
func (t MessageType) Feature() FeatureFlags {
	if !t.Known() {
		return 0
	}
	return typeInfo[t].feature
}

// Lengths describes, in words, the exact message lengths (header included)
// Decode accepts for t, such as "16, 20 or 40".
func (t MessageType) Lengths() string {
	if !t.Known() {
		return ""
	}
	return typeInfo[t].lengths
}

// Message is one decoded or to-be-encoded channel-management message. The
// concrete types are the pointer types of this package (*OfferChannel,
// *GpadlBody, ...); a type switch tells them apart. The interface is closed:
// only this package implements it.
type Message interface {
	// Type is the message type the header carries.
	Type() MessageType
	// Size is the encoded length, header included.
	Size() int
	// Append appends the message's exact wire bytes, header included, to
	// b. It panics if the message cannot be encoded (a GPADL message with
	// more data than fits in 240 bytes): that is the caller's bug, not
	// the peer's.
	Append(b []byte) []byte

	// unmarshal decodes a whole message, header included, whose type has
	// been checked. It seals the interface.
	unmarshal(b []byte) error
}

// Marshal returns the wire bytes of m in a new slice of exactly m.Size()
// bytes.
func Marshal(m Message) []byte {
	return m.Append(make([]byte, 0, m.Size()))
}

// PeekType returns the type in the header of b without decoding the body.
func PeekType(b []byte) (MessageType, error) {
	if len(b) < HeaderSize {
		e := &DecodeError{Len: len(b), Err: ErrShort, Want: "at least 8"}
		if len(b) >= 4 {
			// Named in the error: the type field is whole, the header not.
			e.Type = MessageType(le.Uint32(b))
		}
		return 0, e
	}
	return MessageType(le.Uint32(b)), nil
}

// Decode decodes one message: b must be the whole message, header included,
// and nothing else. The result does not alias b.
//
// Exactly the lengths MessageType.Lengths lists are accepted; anything else
// is a *DecodeError matching ErrShort, ErrTooLong, ErrUnknownType or
// ErrLength. The header's padding word is ignored. Decode allocates the
// returned message and nothing else.
func Decode(b []byte) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageSize {
		return nil, &DecodeError{Type: t, Len: len(b), Err: ErrTooLong}
	}
	var m Message
	switch t {
	case TypeOfferChannel:
		m = new(OfferChannel)
	case TypeRescindChannelOffer:
		m = new(RescindChannelOffer)
	case TypeRequestOffers:
		m = new(RequestOffers)
	case TypeAllOffersDelivered:
		m = new(AllOffersDelivered)
	case TypeOpenChannel:
		m = new(OpenChannel)
	case TypeOpenChannelResult:
		m = new(OpenChannelResult)
	case TypeCloseChannel:
		m = new(CloseChannel)
	case TypeGpadlHeader:
		// One allocation holds the struct and its data array.
		box := new(gpadlHeaderBox)
		box.m.Data = box.data[:0]
		m = &box.m
	case TypeGpadlBody:
		box := new(gpadlBodyBox)
		box.m.Data = box.data[:0]
		m = &box.m
	case TypeGpadlCreated:
		m = new(GpadlCreated)
	case TypeGpadlTeardown:
		m = new(GpadlTeardown)
	case TypeGpadlTorndown:
		m = new(GpadlTorndown)
	case TypeRelIDReleased:
		m = new(RelIDReleased)
	case TypeInitiateContact:
		m = new(InitiateContact)
	case TypeVersionResponse:
		m = new(VersionResponse)
	case TypeUnload:
		m = new(Unload)
	case TypeUnloadComplete:
		m = new(UnloadComplete)
	case TypeOpenReservedChannel:
		m = new(OpenReservedChannel)
	case TypeCloseReservedChannel:
		m = new(CloseReservedChannel)
	case TypeCloseReservedResponse:
		m = new(CloseReservedResponse)
	case TypeTLConnectRequest:
		m = new(TLConnectRequest)
	case TypeModifyChannel:
		m = new(ModifyChannel)
	case TypeTLConnectRequestResult:
		m = new(TLConnectRequestResult)
	case TypeModifyChannelResponse:
		m = new(ModifyChannelResponse)
	case TypeModifyConnection:
		m = new(ModifyConnection)
	case TypeModifyConnectionResponse:
		m = new(ModifyConnectionResponse)
	case TypePause:
		m = new(Pause)
	case TypePauseResponse:
		m = new(PauseResponse)
	case TypeResume:
		m = new(Resume)
	default:
		return nil, &DecodeError{Type: t, Len: len(b), Err: ErrUnknownType}
	}
	if err := m.unmarshal(b); err != nil {
		return nil, err
	}
	return m, nil
}

// lengthError reports that a message of n bytes is none of the lengths
// its type accepts; min is the shortest of them.
func lengthError(t MessageType, n, min int) error {
	err := ErrLength
	if n < min {
		err = ErrShort
	}
	return &DecodeError{Type: t, Len: n, Err: err, Want: t.Lengths()}
}

// checkLen accepts exactly one length.
func checkLen(t MessageType, b []byte, want int) error {
	if len(b) != want {
		return lengthError(t, len(b), want)
	}
	return nil
}

// appendHeader starts a message of size bytes: it grows b once for the
// whole message, so the field appends that follow never reallocate.
func appendHeader(b []byte, t MessageType, size int) []byte {
	if size > MaxMessageSize {
		panic(fmt.Sprintf("protocol: %v of %d bytes exceeds the %d-byte message limit", t, size, MaxMessageSize))
	}
	if cap(b)-len(b) < size {
		nb := make([]byte, len(b), len(b)+size)
		copy(nb, b)
		b = nb
	}
	b = le.AppendUint32(b, uint32(t))
	return le.AppendUint32(b, 0)
}

// appendZero appends n zero bytes, for padding and reserved fields.
func appendZero(b []byte, n int) []byte {
	var z [16]byte
	for n > len(z) {
		b = append(b, z[:]...)
		n -= len(z)
	}
	return append(b, z[:n]...)
}
