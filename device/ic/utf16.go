package ic

import (
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeUTF16 reads a NUL-terminated UTF-16LE string of size bytes
// (terminator included) from field, a fixed-size array. A size that is
// odd, past the field, or whose last unit is not the NUL is malformed; so
// is a NUL before the end. size 0 is the empty string (Linux's replies
// may leave the terminator to the host's zero fill: see decodeUTF16Loose).
func decodeUTF16(field []byte, size uint32, what string) (string, error) {
	if size == 0 {
		return "", nil
	}
	if size%2 != 0 || uint64(size) > uint64(len(field)) {
		return "", malformed("%s of %d bytes in a field of %d (UTF-16: even, and within it)", what, size, len(field))
	}
	units := make([]uint16, size/2)
	for i := range units {
		units[i] = binary.LittleEndian.Uint16(field[2*i:])
	}
	if units[len(units)-1] != 0 {
		return "", malformed("%s of %d bytes without its NUL terminator", what, size)
	}
	units = units[:len(units)-1]
	for _, u := range units {
		if u == 0 {
			return "", malformed("%s holds a NUL before its end", what)
		}
	}
	return string(utf16.Decode(units)), nil
}

// decodeUTF16Loose reads a string of size bytes that may lack its
// terminator, as Linux's replies write them (the field beyond is zero):
// the string ends at the first NUL or at size.
func decodeUTF16Loose(field []byte, size uint32, what string) (string, error) {
	if size%2 != 0 || uint64(size) > uint64(len(field)) {
		return "", malformed("%s of %d bytes in a field of %d (UTF-16: even, and within it)", what, size, len(field))
	}
	units := make([]uint16, 0, size/2)
	for i := 0; i+1 < int(size); i += 2 {
		u := binary.LittleEndian.Uint16(field[i:])
		if u == 0 {
			break
		}
		units = append(units, u)
	}
	return string(utf16.Decode(units)), nil
}

// encodeUTF16 writes s as UTF-16LE with its NUL into field and returns
// the bytes written, terminator included; false when it does not fit or s
// is not valid UTF-8 or holds a NUL.
func encodeUTF16(field []byte, s string) (uint32, bool) {
	if !utf8.ValidString(s) {
		return 0, false
	}
	units := utf16.Encode([]rune(s))
	if 2*(len(units)+1) > len(field) {
		return 0, false
	}
	for i, u := range units {
		if u == 0 {
			return 0, false
		}
		binary.LittleEndian.PutUint16(field[2*i:], u)
	}
	binary.LittleEndian.PutUint16(field[2*len(units):], 0)
	return uint32(2 * (len(units) + 1)), true
}

// utf16Len is the bytes s takes as UTF-16 with its terminator.
func utf16Len(s string) int { return 2 * (len(utf16.Encode([]rune(s))) + 1) }
