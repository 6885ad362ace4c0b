package protocol

import (
	"strconv"
	"strings"
)

// Version is a VMBus protocol version, major<<16 | minor. Versions compare
// as numbers: a later version is a larger one.
type Version uint32

// The protocol versions, with the Windows release that introduced each.
const (
	VersionV1        Version = 0x0000000D // 0.13, Windows Server 2008
	VersionWin7      Version = 0x00010001 // 1.1
	VersionWin8      Version = 0x00020004 // 2.4
	VersionWin81     Version = 0x00030000 // 3.0, Windows 8.1
	VersionWin10     Version = 0x00040000 // 4.0
	VersionWin10RS30 Version = 0x00040001 // 4.1, Windows 10 RS3.0
	VersionWin10RS31 Version = 0x00050000 // 5.0, Windows 10 RS3.1
	VersionWin10RS4  Version = 0x00050001 // 5.1
	VersionWin10RS5  Version = 0x00050002 // 5.2
	VersionIron      Version = 0x00050003 // 5.3
	VersionCopper    Version = 0x00060000 // 6.0, adds feature flags
)

// versions is newest first: the order a client tries them in.
var versions = [...]Version{
	VersionCopper, VersionIron, VersionWin10RS5, VersionWin10RS4,
	VersionWin10RS31, VersionWin10RS30, VersionWin10, VersionWin81,
	VersionWin8, VersionWin7, VersionV1,
}

// Versions returns every known version, newest first. A client steps down
// this list: the server accepts an exact match only, so the client offers
// each in turn until one is accepted. The slice is the caller's.
func Versions() []Version {
	v := versions
	return v[:]
}

// MakeVersion builds a version from its two halves.
func MakeVersion(major, minor uint16) Version { return Version(major)<<16 | Version(minor) }

// Major is the high half of v.
func (v Version) Major() uint16 { return uint16(v >> 16) }

// Minor is the low half of v.
func (v Version) Minor() uint16 { return uint16(v) }

// Known reports whether v is one of the versions in the table.
func (v Version) Known() bool { return v.name() != "" }

func (v Version) name() string {
	switch v {
	case VersionV1:
		return "V1"
	case VersionWin7:
		return "Win7"
	case VersionWin8:
		return "Win8"
	case VersionWin81:
		return "Win8.1"
	case VersionWin10:
		return "Win10"
	case VersionWin10RS30:
		return "Win10 RS3.0"
	case VersionWin10RS31:
		return "Win10 RS3.1"
	case VersionWin10RS4:
		return "Win10 RS4"
	case VersionWin10RS5:
		return "Win10 RS5"
	case VersionIron:
		return "Iron"
	case VersionCopper:
		return "Copper"
	}
	return ""
}

// String is "Name (major.minor)" for a known version and "major.minor"
// for any other.
func (v Version) String() string {
	num := strconv.Itoa(int(v.Major())) + "." + strconv.Itoa(int(v.Minor()))
	if n := v.name(); n != "" {
		return n + " (" + num + ")"
	}
	return num
}

// FeatureFlags are the optional features a Copper (6.0) client asks for in
// InitiateContact and the server grants in VersionResponse.
type FeatureFlags uint32

// The Copper feature flags.
const (
	// FeatureGuestSpecifiedSignalParams: the guest picks the connection
	// id and event flag in the long OpenChannel form.
	FeatureGuestSpecifiedSignalParams FeatureFlags = 0x1
	// FeatureInterruptRedirection: OpenChannel's redirect-interrupt flag.
	FeatureInterruptRedirection FeatureFlags = 0x2
	// FeatureModifyConnection: ModifyConnection and its response.
	FeatureModifyConnection FeatureFlags = 0x4
	// FeatureClientID: InitiateContact carries a client GUID.
	FeatureClientID FeatureFlags = 0x8
	// FeatureConfidentialChannels: the confidential offer flags.
	FeatureConfidentialChannels FeatureFlags = 0x10
	// FeaturePauseResume: Pause, PauseResponse and Resume.
	FeaturePauseResume FeatureFlags = 0x20
	// FeatureServerSpecifiedMonitorPages: the long VersionResponse with
	// the server's monitor page addresses.
	FeatureServerSpecifiedMonitorPages FeatureFlags = 0x40
	// FeatureGPAPinning: GPA pinning.
	FeatureGPAPinning FeatureFlags = 0x80

	// AllFeatures is every flag this package knows.
	AllFeatures FeatureFlags = 0xFF
)

var featureNames = [...]string{
	"guest-specified-signal-params", "interrupt-redirection",
	"modify-connection", "client-id", "confidential-channels",
	"pause-resume", "server-specified-monitor-pages", "gpa-pinning",
}

// String lists the set flags by name, joined with "|"; unknown bits are
// shown in hex, and no flags as "0".
func (f FeatureFlags) String() string {
	return flagString(uint64(f), featureNames[:])
}

// flagString names the set bits of v, bit i by names[i]; an empty name or a
// bit past the table is printed as hex.
func flagString(v uint64, names []string) string {
	if v == 0 {
		return "0"
	}
	var sb strings.Builder
	var unknown uint64
	for i := 0; i < 64; i++ {
		bit := uint64(1) << i
		if v&bit == 0 {
			continue
		}
		if i >= len(names) || names[i] == "" {
			unknown |= bit
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString(names[i])
	}
	if unknown != 0 {
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString("0x" + strconv.FormatUint(unknown, 16))
	}
	return sb.String()
}

// ConnectionState is VersionResponse's verdict on a contact attempt.
type ConnectionState uint8

// The connection states.
const (
	ConnectionSuccessful     ConnectionState = 0
	ConnectionLowResources   ConnectionState = 1
	ConnectionUnknownFailure ConnectionState = 2
)

// String names the state, or prints its number if unknown.
func (s ConnectionState) String() string {
	switch s {
	case ConnectionSuccessful:
		return "successful"
	case ConnectionLowResources:
		return "low-resources"
	case ConnectionUnknownFailure:
		return "unknown-failure"
	}
	return "ConnectionState(" + strconv.Itoa(int(s)) + ")"
}
