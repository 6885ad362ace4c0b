package protocol

import (
	"errors"
	"fmt"
)

// GUID is a 16-byte identifier in the Windows wire order: the first three
// fields (u32, u16, u16) little-endian, the last eight bytes as they are.
// The array holds the wire bytes, so copying it to or from a message needs
// no conversion; only String and ParseGUID know the mixed-endian rule.
type GUID [16]byte

// ErrBadGUID is returned by ParseGUID for text that is not a GUID.
var ErrBadGUID = errors.New("protocol: malformed GUID")

// guidGroups maps each wire byte to the index of its two hex digits in the
// 36-character text form: fields 1 to 3 are reversed (little-endian).
var guidGroups = [16]int{6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34}

// String is the usual lowercase 8-4-4-4-12 form, such as
// "f8615163-df3e-46c5-913f-f2d2f965ed0e".
func (g GUID) String() string {
	const digits = "0123456789abcdef"
	var s [36]byte
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	for i, at := range guidGroups {
		s[at] = digits[g[i]>>4]
		s[at+1] = digits[g[i]&0xF]
	}
	return string(s[:])
}

// ParseGUID parses the 8-4-4-4-12 form in either case, optionally in
// braces, into wire order.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", ErrBadGUID, s)
	}
	for i, at := range guidGroups {
		hi, ok1 := unhex(s[at])
		lo, ok2 := unhex(s[at+1])
		if !ok1 || !ok2 {
			return GUID{}, fmt.Errorf("%w: %q: bad hex digit near %d", ErrBadGUID, s, at)
		}
		g[i] = hi<<4 | lo
	}
	return g, nil
}

// MustParseGUID is ParseGUID for constants in the program text: it panics
// on a malformed GUID.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// IsZero reports whether g is all zero bytes (the nil GUID).
func (g GUID) IsZero() bool { return g == GUID{} }

// MarshalText emits the String form, so JSON shows GUIDs as text.
func (g GUID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText accepts what ParseGUID accepts.
func (g *GUID) UnmarshalText(b []byte) error {
	v, err := ParseGUID(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
