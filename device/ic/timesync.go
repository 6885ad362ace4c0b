package ic

import (
	"encoding/binary"
	"time"
)

// Time sync bodies (DEVICES.md §3.7). Version 4.0 carries the VM
// reference time; older versions a child time and a round-trip time.
const (
	// TimeSyncSizeV3 and TimeSyncSizeV4 are the bodies the host sends
	// (OpenVMM's, reserved bytes included); a reader needs 25 and 22.
	TimeSyncSizeV3 = 28
	TimeSyncSizeV4 = 24
	timeSyncMinV3  = 25
	timeSyncMinV4  = 22
)

// Time sync flags.
const (
	TimeFlagProbe  uint8 = 0
	TimeFlagSync   uint8 = 1
	TimeFlagSample uint8 = 2
)

// epochDelta is 1970-01-01 in Windows time: 100 ns units since
// 1601-01-01.
const epochDelta = 116444736000000000

// ToWindowsTime converts t to Windows time (FILETIME units).
func ToWindowsTime(t time.Time) uint64 {
	return uint64(t.UnixNano()/100 + epochDelta)
}

// FromWindowsTime converts Windows time to a time.Time (UTC). Values
// beyond what time.Time holds in nanoseconds saturate.
func FromWindowsTime(w uint64) time.Time {
	const maxUnix100 = (1<<63 - 1) / 100
	if w > 1<<63-1 {
		w = 1<<63 - 1
	}
	d := min(max(int64(w)-epochDelta, -maxUnix100), maxUnix100)
	return time.Unix(0, d*100).UTC()
}

// TimeSyncMsg is a time sync body of either layout.
type TimeSyncMsg struct {
	V4         bool   // the 4.0 layout
	ParentTime uint64 // host UTC, Windows time
	// ChildTime (v1/v3, unused) or the VM reference time (v4) at which
	// the host read its clock.
	ChildTime uint64
	RoundTrip uint64 // v1/v3 only
	Flags     uint8
	Leap      uint8 // v4 only
	Stratum   uint8 // v4 only
}

// Marshal returns the body of the layout V4 says.
func (m *TimeSyncMsg) Marshal() []byte {
	if m.V4 {
		b := make([]byte, TimeSyncSizeV4)
		binary.LittleEndian.PutUint64(b, m.ParentTime)
		binary.LittleEndian.PutUint64(b[8:], m.ChildTime)
		b[16], b[17], b[18] = m.Flags, m.Leap, m.Stratum
		return b
	}
	b := make([]byte, TimeSyncSizeV3)
	binary.LittleEndian.PutUint64(b, m.ParentTime)
	binary.LittleEndian.PutUint64(b[8:], m.ChildTime)
	binary.LittleEndian.PutUint64(b[16:], m.RoundTrip)
	b[24] = m.Flags
	return b
}

// UnmarshalTimeSync reads a body of the layout the negotiated message
// version implies (v4: 4.0 or later).
func UnmarshalTimeSync(b []byte, v4 bool) (*TimeSyncMsg, error) {
	m := &TimeSyncMsg{V4: v4}
	if v4 {
		if len(b) < timeSyncMinV4 {
			return nil, malformed("time sync 4.0 body of %d bytes, want at least %d", len(b), timeSyncMinV4)
		}
		m.ParentTime, m.ChildTime = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		m.Flags, m.Leap, m.Stratum = b[16], b[17], b[18]
		return m, nil
	}
	if len(b) < timeSyncMinV3 {
		return nil, malformed("time sync body of %d bytes, want at least %d", len(b), timeSyncMinV3)
	}
	m.ParentTime, m.ChildTime, m.RoundTrip = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
	m.Flags = b[24]
	return m, nil
}
