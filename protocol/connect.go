package protocol

// Messages that set up and tear down the connection between guest and host:
// contact and version negotiation, monitor pages, unload.

// Sizes of the connection messages, header included.
const (
	InitiateContactSize             = 40
	InitiateContactClientIDSize     = 56 // adds the client GUID (FeatureClientID)
	VersionResponseSize             = 16
	VersionResponseFeaturesSize     = 20 // adds the supported features (Copper)
	VersionResponseMonitorPagesSize = 40 // adds the server's monitor pages (FeatureServerSpecifiedMonitorPages)
	ModifyConnectionSize            = 24
	ModifyConnectionResponseSize    = 9
)

// Message offsets of the InitiateContact fields.
const (
	contactVersion       = 8
	contactTargetVP      = 12
	contactInterruptPage = 16 // u64 before 5.0
	contactSINT          = 16 // u8 from 5.0
	contactVTL           = 17 // u8 from 5.0; u16 padding at 18
	contactFeatures      = 20 // u32 from 5.0 (flags from Copper)
	contactParentMonitor = 24
	contactChildMonitor  = 32
	contactClientID      = 40 // GUID, 56-byte form only
)

// InitiateContact (type 14, guest→host) requests one protocol version and
// hands the host the guest's monitor pages.
//
// The u64 at message offset 16 depends on VersionRequested, which the
// message itself carries: before 5.0 it is InterruptPage; from 5.0 it is
// {u8 MessageSINT, u8 MessageVTL, u16 padding, u32 Features}. Append
// encodes, and Decode fills, only the fields of the form VersionRequested
// selects.
//
// HasClientID selects the 56-byte form that carries ClientID (Copper with
// FeatureClientID). A server that does not negotiate it reads only the
// first 40 bytes, but Decode keeps the exact length, so a 56-byte message
// decodes with HasClientID set whatever its version.
type InitiateContact struct {
	VersionRequested         Version      `json:"version_requested"`
	TargetMessageVP          uint32       `json:"target_message_vp"`
	InterruptPage            uint64       `json:"interrupt_page"` // before 5.0
	MessageSINT              uint8        `json:"message_sint"`   // from 5.0; Linux asks for 2
	MessageVTL               uint8        `json:"message_vtl"`    // from 5.0
	Features                 FeatureFlags `json:"features"`       // from 5.0
	ParentToChildMonitorPage uint64       `json:"parent_to_child_monitor_page"`
	ChildToParentMonitorPage uint64       `json:"child_to_parent_monitor_page"`
	HasClientID              bool         `json:"has_client_id"`
	ClientID                 GUID         `json:"client_id"`
}

// usesTargetInfo reports whether the u64 at offset 16 is the 5.0 form.
func (m *InitiateContact) usesTargetInfo() bool { return m.VersionRequested >= VersionWin10RS31 }

// Type is TypeInitiateContact.
func (*InitiateContact) Type() MessageType { return TypeInitiateContact }

// Size is InitiateContactSize, or InitiateContactClientIDSize with a
// client id.
func (m *InitiateContact) Size() int {
	if m.HasClientID {
		return InitiateContactClientIDSize
	}
	return InitiateContactSize
}

// Append appends the 40 or 56 wire bytes.
func (m *InitiateContact) Append(b []byte) []byte {
	b = appendHeader(b, TypeInitiateContact, m.Size())
	b = le.AppendUint32(b, uint32(m.VersionRequested))
	b = le.AppendUint32(b, m.TargetMessageVP)
	if m.usesTargetInfo() {
		b = append(b, m.MessageSINT, m.MessageVTL, 0, 0)
		b = le.AppendUint32(b, uint32(m.Features))
	} else {
		b = le.AppendUint64(b, m.InterruptPage)
	}
	b = le.AppendUint64(b, m.ParentToChildMonitorPage)
	b = le.AppendUint64(b, m.ChildToParentMonitorPage)
	if m.HasClientID {
		b = append(b, m.ClientID[:]...)
	}
	return b
}

func (m *InitiateContact) unmarshal(b []byte) error {
	switch len(b) {
	case InitiateContactSize:
	case InitiateContactClientIDSize:
		m.HasClientID = true
		copy(m.ClientID[:], b[contactClientID:])
	default:
		return lengthError(TypeInitiateContact, len(b), InitiateContactSize)
	}
	m.VersionRequested = Version(le.Uint32(b[contactVersion:]))
	m.TargetMessageVP = le.Uint32(b[contactTargetVP:])
	if m.usesTargetInfo() {
		m.MessageSINT = b[contactSINT]
		m.MessageVTL = b[contactVTL]
		m.Features = FeatureFlags(le.Uint32(b[contactFeatures:]))
	} else {
		m.InterruptPage = le.Uint64(b[contactInterruptPage:])
	}
	m.ParentToChildMonitorPage = le.Uint64(b[contactParentMonitor:])
	m.ChildToParentMonitorPage = le.Uint64(b[contactChildMonitor:])
	return nil
}

// Message offsets of the VersionResponse fields.
const (
	versionSupported     = 8  // u8 bool
	versionState         = 9  // u8; u16 padding at 10
	versionSelected      = 12 // u32
	versionFeatures      = 16 // u32, 20- and 40-byte forms; u32 padding at 20
	versionParentMonitor = 24 // u64, 40-byte form
	versionChildMonitor  = 32 // u64, 40-byte form
)

// VersionResponse (type 15, host→guest) answers InitiateContact.
//
// VersionOrConnectionID is, when the version is supported and is 5.0 or
// later, the connection id the guest must post every later message to (a
// host must not return 0 there: Linux guests break); otherwise it is the
// version field of older hosts.
//
// The three forms are chosen by HasFeatures (20 bytes, Copper) and
// HasMonitorPages (40 bytes, FeatureServerSpecifiedMonitorPages; it implies
// the features field). Decode sets both for a 40-byte message.
type VersionResponse struct {
	VersionSupported         bool            `json:"version_supported"`
	ConnectionState          ConnectionState `json:"connection_state"`
	VersionOrConnectionID    uint32          `json:"version_or_connection_id"`
	HasFeatures              bool            `json:"has_features"`
	SupportedFeatures        FeatureFlags    `json:"supported_features"`
	HasMonitorPages          bool            `json:"has_monitor_pages"`
	ParentToChildMonitorPage uint64          `json:"parent_to_child_monitor_page"`
	ChildToParentMonitorPage uint64          `json:"child_to_parent_monitor_page"`
}

// Type is TypeVersionResponse.
func (*VersionResponse) Type() MessageType { return TypeVersionResponse }

// Size is 16, 20 or 40 bytes, by the Has fields.
func (m *VersionResponse) Size() int {
	switch {
	case m.HasMonitorPages:
		return VersionResponseMonitorPagesSize
	case m.HasFeatures:
		return VersionResponseFeaturesSize
	}
	return VersionResponseSize
}

// Append appends the 16, 20 or 40 wire bytes.
func (m *VersionResponse) Append(b []byte) []byte {
	b = appendHeader(b, TypeVersionResponse, m.Size())
	b = append(b, boolByte(m.VersionSupported), byte(m.ConnectionState), 0, 0)
	b = le.AppendUint32(b, m.VersionOrConnectionID)
	if m.HasFeatures || m.HasMonitorPages {
		b = le.AppendUint32(b, uint32(m.SupportedFeatures))
	}
	if m.HasMonitorPages {
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, m.ParentToChildMonitorPage)
		b = le.AppendUint64(b, m.ChildToParentMonitorPage)
	}
	return b
}

func (m *VersionResponse) unmarshal(b []byte) error {
	switch len(b) {
	case VersionResponseSize:
	case VersionResponseFeaturesSize:
		m.HasFeatures = true
	case VersionResponseMonitorPagesSize:
		m.HasFeatures, m.HasMonitorPages = true, true
		m.ParentToChildMonitorPage = le.Uint64(b[versionParentMonitor:])
		m.ChildToParentMonitorPage = le.Uint64(b[versionChildMonitor:])
	default:
		return lengthError(TypeVersionResponse, len(b), VersionResponseSize)
	}
	if m.HasFeatures {
		m.SupportedFeatures = FeatureFlags(le.Uint32(b[versionFeatures:]))
	}
	m.VersionSupported = b[versionSupported] != 0
	m.ConnectionState = ConnectionState(b[versionState])
	m.VersionOrConnectionID = le.Uint32(b[versionSelected:])
	return nil
}

// ModifyConnection (type 25, guest→host, Copper with
// FeatureModifyConnection) replaces the monitor pages. Layout as OpenVMM
// defines it: two u64 page addresses.
type ModifyConnection struct {
	ParentToChildMonitorPage uint64 `json:"parent_to_child_monitor_page"`
	ChildToParentMonitorPage uint64 `json:"child_to_parent_monitor_page"`
}

// Type is TypeModifyConnection.
func (*ModifyConnection) Type() MessageType { return TypeModifyConnection }

// Size is ModifyConnectionSize.
func (*ModifyConnection) Size() int { return ModifyConnectionSize }

// Append appends the 24 wire bytes.
func (m *ModifyConnection) Append(b []byte) []byte {
	b = appendHeader(b, TypeModifyConnection, ModifyConnectionSize)
	b = le.AppendUint64(b, m.ParentToChildMonitorPage)
	return le.AppendUint64(b, m.ChildToParentMonitorPage)
}

func (m *ModifyConnection) unmarshal(b []byte) error {
	if err := checkLen(TypeModifyConnection, b, ModifyConnectionSize); err != nil {
		return err
	}
	m.ParentToChildMonitorPage = le.Uint64(b[8:])
	m.ChildToParentMonitorPage = le.Uint64(b[16:])
	return nil
}

// ModifyConnectionResponse (type 26, host→guest) answers ModifyConnection.
// Layout as OpenVMM defines it: a single u8 connection state, so the
// message is 9 bytes.
type ModifyConnectionResponse struct {
	ConnectionState ConnectionState `json:"connection_state"`
}

// Type is TypeModifyConnectionResponse.
func (*ModifyConnectionResponse) Type() MessageType { return TypeModifyConnectionResponse }

// Size is ModifyConnectionResponseSize.
func (*ModifyConnectionResponse) Size() int { return ModifyConnectionResponseSize }

// Append appends the 9 wire bytes.
func (m *ModifyConnectionResponse) Append(b []byte) []byte {
	b = appendHeader(b, TypeModifyConnectionResponse, ModifyConnectionResponseSize)
	return append(b, byte(m.ConnectionState))
}

func (m *ModifyConnectionResponse) unmarshal(b []byte) error {
	if err := checkLen(TypeModifyConnectionResponse, b, ModifyConnectionResponseSize); err != nil {
		return err
	}
	m.ConnectionState = ConnectionState(b[8])
	return nil
}
