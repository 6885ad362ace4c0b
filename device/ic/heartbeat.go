package ic

import "encoding/binary"

// Heartbeat bodies (DEVICES.md §3.5): u64 sequence number, then 32
// reserved bytes in Linux's layout (OpenVMM: u32 application state at 8).
const (
	HeartbeatSize    = 40
	heartbeatMinimum = 8
)

// Application states of OpenVMM's heartbeat layout (the u32 at body 8).
const (
	AppStateUnknown  uint32 = 0
	AppStateHealthy  uint32 = 1
	AppStateCritical uint32 = 2
	AppStateStopped  uint32 = 3
)

// Heartbeat is a heartbeat body.
type Heartbeat struct {
	Sequence uint64
	AppState uint32
}

// Marshal returns the 40-byte body.
func (h *Heartbeat) Marshal() []byte {
	b := make([]byte, HeartbeatSize)
	binary.LittleEndian.PutUint64(b, h.Sequence)
	binary.LittleEndian.PutUint32(b[8:], h.AppState)
	return b
}

// UnmarshalHeartbeat reads a heartbeat body: the sequence is all a reader
// needs (Linux's rule); the application state when present.
func UnmarshalHeartbeat(b []byte) (*Heartbeat, error) {
	if len(b) < heartbeatMinimum {
		return nil, malformed("heartbeat body of %d bytes, want at least %d", len(b), heartbeatMinimum)
	}
	h := &Heartbeat{Sequence: binary.LittleEndian.Uint64(b)}
	if len(b) >= 12 {
		h.AppState = binary.LittleEndian.Uint32(b[8:])
	}
	return h, nil
}

// HeartbeatReply edits a heartbeat request payload into the guest's
// answer: sequence + 1 (wrapping), the flags a response, the rest echoed.
// ok is false for a request too short to hold a sequence.
func HeartbeatReply(req []byte) ([]byte, bool) {
	if len(req) < offBody+heartbeatMinimum {
		return nil, false
	}
	b := Reply(req)
	seq := binary.LittleEndian.Uint64(b[offBody:])
	binary.LittleEndian.PutUint64(b[offBody:], seq+1)
	return b, true
}
