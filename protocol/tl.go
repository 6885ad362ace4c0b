package protocol

// Transport-layer (hvsocket) connection messages: the guest asks the host
// to connect a guest endpoint to a host service, and the host answers.

// Sizes of the TL messages, header included.
const (
	TLConnectRequestSize       = 40
	TLConnectRequestSiloSize   = 56 // adds the silo id (from 5.2)
	TLConnectRequestResultSize = 44
)

// Message offsets of the TL fields.
const (
	tlEndpointID = 8  // GUID
	tlServiceID  = 24 // GUID
	tlSiloID     = 40 // GUID, 56-byte request only
	tlStatus     = 40 // u32, result only
)

// TLConnectRequest (type 21, guest→host, from 4.0) asks to connect
// EndpointID (the guest's) to ServiceID (the host's). HasSiloID selects the
// 56-byte form with SiloID, which OpenVMM accepts from 5.2; some clients
// send the 40-byte form on newer versions too, so Decode accepts either at
// any version.
type TLConnectRequest struct {
	EndpointID GUID `json:"endpoint_id"`
	ServiceID  GUID `json:"service_id"`
	HasSiloID  bool `json:"has_silo_id"`
	SiloID     GUID `json:"silo_id"`
}

// Type is TypeTLConnectRequest.
func (*TLConnectRequest) Type() MessageType { return TypeTLConnectRequest }

// Size is TLConnectRequestSize, or TLConnectRequestSiloSize with a silo id.
func (m *TLConnectRequest) Size() int {
	if m.HasSiloID {
		return TLConnectRequestSiloSize
	}
	return TLConnectRequestSize
}

// Append appends the 40 or 56 wire bytes.
func (m *TLConnectRequest) Append(b []byte) []byte {
	b = appendHeader(b, TypeTLConnectRequest, m.Size())
	b = append(b, m.EndpointID[:]...)
	b = append(b, m.ServiceID[:]...)
	if m.HasSiloID {
		b = append(b, m.SiloID[:]...)
	}
	return b
}

func (m *TLConnectRequest) unmarshal(b []byte) error {
	switch len(b) {
	case TLConnectRequestSize:
	case TLConnectRequestSiloSize:
		m.HasSiloID = true
		copy(m.SiloID[:], b[tlSiloID:])
	default:
		return lengthError(TypeTLConnectRequest, len(b), TLConnectRequestSize)
	}
	copy(m.EndpointID[:], b[tlEndpointID:])
	copy(m.ServiceID[:], b[tlServiceID:])
	return nil
}

// TLConnectRequestResult (type 23, host→guest, from 4.1) answers a failed
// TLConnectRequest. Layout as OpenVMM defines it: {GUID endpoint
// id, GUID service id, u32 status}.
type TLConnectRequestResult struct {
	EndpointID GUID   `json:"endpoint_id"`
	ServiceID  GUID   `json:"service_id"`
	Status     uint32 `json:"status"` // an NTSTATUS
}

// Type is TypeTLConnectRequestResult.
func (*TLConnectRequestResult) Type() MessageType { return TypeTLConnectRequestResult }

// Size is TLConnectRequestResultSize.
func (*TLConnectRequestResult) Size() int { return TLConnectRequestResultSize }

// Append appends the 44 wire bytes.
func (m *TLConnectRequestResult) Append(b []byte) []byte {
	b = appendHeader(b, TypeTLConnectRequestResult, TLConnectRequestResultSize)
	b = append(b, m.EndpointID[:]...)
	b = append(b, m.ServiceID[:]...)
	return le.AppendUint32(b, m.Status)
}

func (m *TLConnectRequestResult) unmarshal(b []byte) error {
	if err := checkLen(TypeTLConnectRequestResult, b, TLConnectRequestResultSize); err != nil {
		return err
	}
	copy(m.EndpointID[:], b[tlEndpointID:])
	copy(m.ServiceID[:], b[tlServiceID:])
	m.Status = le.Uint32(b[tlStatus:])
	return nil
}

// StatusConnectionRefused is the NTSTATUS a host puts in a
// TLConnectRequestResult when nothing listens on the service (OpenVMM's
// choice; Hyper-V's is not documented).
const StatusConnectionRefused uint32 = 0xC0000236

// The hvsock fields of an offer's user-defined area (DEVICES.md §2.4),
// as offsets into UserDefined: the area starts at body offset 52, with
// the pipe mode.
const (
	hvsForGuestAccept    = 4  // u8
	hvsForGuestContainer = 5  // u8
	hvsParameterVersion  = 6  // u32, unaligned
	hvsSiloID            = 10 // GUID, unaligned
)

// HVSockOffer is what an hvsock channel's offer says in its user-defined
// area after the pipe mode.
type HVSockOffer struct {
	// ForGuestAccept: the host connects to a service the guest listens
	// on (1), rather than answering the guest's TLConnectRequest (0).
	ForGuestAccept    bool `json:"for_guest_accept"`
	ForGuestContainer bool `json:"for_guest_container"`
	// ParameterVersion is 0 before Windows 10 RS5 and 1 from it.
	ParameterVersion uint32 `json:"parameter_version"`
	SiloID           GUID   `json:"silo_id"`
}

// HVSock reads the hvsock fields. Any byte other than 0 in the two flag
// bytes counts as set, as Linux reads them.
func (u *UserDefined) HVSock() HVSockOffer {
	var o HVSockOffer
	o.ForGuestAccept = u[hvsForGuestAccept] != 0
	o.ForGuestContainer = u[hvsForGuestContainer] != 0
	o.ParameterVersion = le.Uint32(u[hvsParameterVersion:])
	copy(o.SiloID[:], u[hvsSiloID:hvsSiloID+16])
	return o
}

// SetHVSock stores the hvsock fields, leaving the pipe mode as it is.
func (u *UserDefined) SetHVSock(o HVSockOffer) {
	u[hvsForGuestAccept] = boolByte(o.ForGuestAccept)
	u[hvsForGuestContainer] = boolByte(o.ForGuestContainer)
	le.PutUint32(u[hvsParameterVersion:], o.ParameterVersion)
	copy(u[hvsSiloID:hvsSiloID+16], o.SiloID[:])
}
