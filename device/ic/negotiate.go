package ic

import (
	"encoding/binary"
	"slices"
)

// Negotiation bodies (DEVICES.md §3.4): u16 framework count F, u16
// message version count M, u32 reserved, then F framework versions and M
// message versions.
const (
	negotiateFixed = 8
	// MaxVersions bounds each list, as Linux does: more is no common
	// version.
	MaxVersions = 100
	// negotiateReplySize is the body of a guest's choice: the counts
	// and two entries.
	negotiateReplySize = negotiateFixed + 8
)

// Negotiate is a negotiation body: the host's offer, or (one entry each)
// the guest's choice; both empty is a guest's "no common version".
type Negotiate struct {
	Frameworks []Version
	Messages   []Version
}

// Marshal returns the body.
func (n *Negotiate) Marshal() []byte {
	if len(n.Frameworks) > MaxVersions || len(n.Messages) > MaxVersions {
		panic("ic: more than MaxVersions versions")
	}
	b := make([]byte, negotiateFixed+4*(len(n.Frameworks)+len(n.Messages)))
	binary.LittleEndian.PutUint16(b, uint16(len(n.Frameworks)))
	binary.LittleEndian.PutUint16(b[2:], uint16(len(n.Messages)))
	off := negotiateFixed
	for _, v := range append(slices.Clone(n.Frameworks), n.Messages...) {
		putVersion(b[off:], v)
		off += 4
	}
	return b
}

// UnmarshalNegotiate reads a negotiation body. Counts past MaxVersions or
// past the body are malformed.
func UnmarshalNegotiate(b []byte) (*Negotiate, error) {
	if len(b) < negotiateFixed {
		return nil, malformed("negotiate body of %d bytes, want at least %d", len(b), negotiateFixed)
	}
	f, m := int(binary.LittleEndian.Uint16(b)), int(binary.LittleEndian.Uint16(b[2:]))
	if f > MaxVersions || m > MaxVersions {
		return nil, malformed("negotiate counts %d framework and %d message versions, at most %d each", f, m, MaxVersions)
	}
	if negotiateFixed+4*(f+m) > len(b) {
		return nil, malformed("negotiate counts %d+%d versions in a body of %d bytes", f, m, len(b))
	}
	n := &Negotiate{Frameworks: make([]Version, f), Messages: make([]Version, m)}
	for i := range f {
		n.Frameworks[i] = getVersion(b[negotiateFixed+4*i:])
	}
	for i := range m {
		n.Messages[i] = getVersion(b[negotiateFixed+4*(f+i):])
	}
	return n, nil
}

// Choose is the guest's choice as Linux makes it: the first of its own
// frameworks (in its order of preference) that the offer lists, and the
// same for message versions. ok is false when either has none in common.
func Choose(offer *Negotiate, frameworks, messages []Version) (fw, msg Version, ok bool) {
	i := slices.IndexFunc(frameworks, func(v Version) bool { return slices.Contains(offer.Frameworks, v) })
	j := slices.IndexFunc(messages, func(v Version) bool { return slices.Contains(offer.Messages, v) })
	if i < 0 || j < 0 {
		return Version{}, Version{}, false
	}
	return frameworks[i], messages[j], true
}

// NegotiateReply edits a negotiate request payload (with its pipe header)
// into the guest's answer, as Linux writes it: message size 16, one
// framework and one message version, or both counts zero when ok is
// false; the flags a response; everything else (the pipe size, the
// host's later entries) left as it was. A request too short to hold the
// answer comes back with only the flags changed.
func NegotiateReply(req []byte, fw, msg Version, ok bool) []byte {
	b := Reply(req)
	if len(b) < offBody+negotiateReplySize {
		return b
	}
	binary.LittleEndian.PutUint16(b[offSize:], negotiateReplySize)
	body := b[offBody:]
	if !ok {
		binary.LittleEndian.PutUint32(body, 0)
		return b
	}
	binary.LittleEndian.PutUint16(body, 1)
	binary.LittleEndian.PutUint16(body[2:], 1)
	putVersion(body[8:], fw)
	putVersion(body[12:], msg)
	return b
}

// Chosen reads a guest's negotiate answer: the versions it chose, or ok
// false for "no common version" (counts zero). An answer that is neither
// is malformed.
func Chosen(body []byte) (fw, msg Version, ok bool, err error) {
	if len(body) < negotiateFixed {
		return Version{}, Version{}, false, malformed("negotiate answer of %d bytes", len(body))
	}
	f, m := binary.LittleEndian.Uint16(body), binary.LittleEndian.Uint16(body[2:])
	switch {
	case f == 0 || m == 0:
		return Version{}, Version{}, false, nil
	case f != 1 || m != 1:
		return Version{}, Version{}, false, malformed("negotiate answer with %d framework and %d message versions, want 1 and 1", f, m)
	case len(body) < negotiateReplySize:
		return Version{}, Version{}, false, malformed("negotiate answer of %d bytes, want %d", len(body), negotiateReplySize)
	}
	return getVersion(body[8:]), getVersion(body[12:]), true, nil
}
