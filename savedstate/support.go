package savedstate

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
)

// Support is what a build of the program reads of saved states: the
// container's format versions and the record kinds its layers know. A
// host that hands its state to another build (a servicing) asks that
// build for its Support first, so that it never hands over a state the
// other build must refuse (a critical record of a kind it does not know).
//
// Its text form, which `vmbus host --state-kinds` prints and a spawned
// successor sends with its ready message, is one line "format" followed by
// the versions, then one line per kind, "kind 0xNNNN" and optionally its
// name:
//
//	format 1
//	kind 0x0001 channel-info
//	kind 0x0002 channel-mappings
//
// Lines of another first word are skipped, so that a later release may
// say more; the container's own kinds (Begin, End) are not listed.
type Support struct {
	Formats []uint16 // increasing, without repeats
	Kinds   []Kind   // increasing, without repeats, all below KindBegin
}

// Bounds of a Support's text form: it comes from another program.
const (
	maxSupportText    = 64 << 10
	maxSupportFormats = 16
	maxSupportKinds   = 4096
)

// Supported is what this program reads: FormatVersion and every kind a
// layer registered (RegisterKind). A kind is registered by the layer that
// writes and restores it, at init, so the program's imports decide.
func Supported() Support {
	kindsMu.RLock()
	ks := make([]Kind, 0, len(kinds))
	for k := range kinds {
		ks = append(ks, k)
	}
	kindsMu.RUnlock()
	slices.Sort(ks)
	return Support{Formats: []uint16{FormatVersion}, Kinds: ks}
}

// ReadsFormat reports whether s reads format version v.
func (s Support) ReadsFormat(v uint16) bool {
	_, ok := slices.BinarySearch(s.Formats, v)
	return ok
}

// Reads reports whether s reads records of kind k. The container's own
// kinds are read by every build.
func (s Support) Reads(k Kind) bool {
	if k == KindBegin || k == KindEnd {
		return true
	}
	_, ok := slices.BinarySearch(s.Kinds, k)
	return ok
}

// Missing returns the kinds of used that s does not read, in the order
// of used.
func (s Support) Missing(used []Kind) []Kind {
	var out []Kind
	for _, k := range used {
		if !s.Reads(k) {
			out = append(out, k)
		}
	}
	return out
}

// AppendText appends s's text form to b; with names, each kind's line
// carries its registered name, if any.
func (s Support) AppendText(b []byte, names bool) []byte {
	b = append(b, "format"...)
	for _, v := range s.Formats {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	b = append(b, '\n')
	for _, k := range s.Kinds {
		b = fmt.Appendf(b, "kind %#04x", uint16(k))
		if names {
			if info, ok := LookupKind(k); ok {
				b = append(b, ' ')
				b = append(b, info.Name...)
			}
		}
		b = append(b, '\n')
	}
	return b
}

// ParseSupport reads Support's text form. It is strict about the lines it
// knows (one format line first, each version and kind once, in increasing
// order, kinds below KindBegin) and skips lines of any other first word.
// On error the Support is zero.
func ParseSupport(text []byte) (Support, error) {
	if len(text) > maxSupportText {
		return Support{}, fmt.Errorf("savedstate: support text of %d bytes", len(text))
	}
	var s Support
	first := true
	for n, line := range bytes.Split(text, []byte("\n")) {
		fields := bytes.Fields(line)
		if first {
			if len(fields) < 2 || string(fields[0]) != "format" {
				return Support{}, fmt.Errorf("savedstate: support text: line %d is not a format line", n+1)
			}
			if len(fields)-1 > maxSupportFormats {
				return Support{}, fmt.Errorf("savedstate: support text: %d formats", len(fields)-1)
			}
			for _, f := range fields[1:] {
				v, err := strconv.ParseUint(string(f), 10, 16)
				if err != nil || v == 0 || (len(s.Formats) > 0 && uint16(v) <= s.Formats[len(s.Formats)-1]) {
					return Support{}, fmt.Errorf("savedstate: support text: format %q", f)
				}
				s.Formats = append(s.Formats, uint16(v))
			}
			first = false
			continue
		}
		if len(fields) == 0 || string(fields[0]) != "kind" {
			continue // blank, or said by a later release
		}
		if len(fields) < 2 || len(s.Kinds) >= maxSupportKinds {
			return Support{}, fmt.Errorf("savedstate: support text: line %d: bad or too many kinds", n+1)
		}
		f := fields[1]
		if len(f) != 6 || f[0] != '0' || f[1] != 'x' {
			return Support{}, fmt.Errorf("savedstate: support text: kind %q", f)
		}
		v, err := strconv.ParseUint(string(f[2:]), 16, 16)
		k := Kind(v)
		if err != nil || k >= KindBegin || (len(s.Kinds) > 0 && k <= s.Kinds[len(s.Kinds)-1]) {
			return Support{}, fmt.Errorf("savedstate: support text: kind %q", f)
		}
		s.Kinds = append(s.Kinds, k)
	}
	if first {
		return Support{}, fmt.Errorf("savedstate: support text: no format line")
	}
	return s, nil
}
