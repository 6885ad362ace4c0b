package pipe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestParseHeader: known answers for the header's cases: data (padding
// after it left out), the end of stream, and each malformed form.
func TestParseHeader(t *testing.T) {
	hdr := func(typ, n uint32, rest ...byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, typ)
		b = binary.LittleEndian.AppendUint32(b, n)
		return append(b, rest...)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		data    string
		bad     bool
	}{
		{"data with padding", hdr(1, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0), "abc", false},
		{"data exact", hdr(1, 8, []byte("01234567")...), "01234567", false},
		{"end of stream", hdr(1, 0), "", false},
		{"end of stream, padded", hdr(1, 0, 0, 0, 0, 0, 0, 0, 0, 0), "", false},
		{"empty", nil, "", true},
		{"short", []byte{1, 0, 0, 0, 0, 0, 0}, "", true},
		{"partial", hdr(2, 0), "", true},
		{"GPA direct set-up", hdr(3, 0), "", true},
		{"GPA direct tear-down", hdr(4, 0), "", true},
		{"type 0", hdr(0, 0), "", true},
		{"size past the payload", hdr(1, 9, make([]byte, 8)...), "", true},
		{"size past the maximum", hdr(1, MaxData+1, make([]byte, MaxData+8)...), "", true},
		{"size wrapping", hdr(1, 0xFFFFFFFF, make([]byte, 8)...), "", true},
	} {
		data, err := ParseHeader(tc.payload)
		if tc.bad {
			if !errors.Is(err, ErrMalformed) || data != nil {
				t.Errorf("%s: %q, %v; want ErrMalformed", tc.name, data, err)
			}
			continue
		}
		if err != nil || string(data) != tc.data {
			t.Errorf("%s: %q, %v; want %q", tc.name, data, err, tc.data)
		}
	}
	// A maximum packet passes.
	if data, err := ParseHeader(hdr(1, MaxData, make([]byte, MaxData)...)); err != nil || len(data) != MaxData {
		t.Errorf("a packet of MaxData: %d bytes, %v", len(data), err)
	}
	var b [HeaderSize]byte
	PutHeader(b[:], 5)
	if !bytes.Equal(b[:], hdr(1, 5)) {
		t.Errorf("PutHeader(5) = % x", b)
	}
}

// FuzzParseHeader: any payload parses or fails without a panic; a
// failure gives no data, and data is exactly the size the header says,
// at offset 8, no more than MaxData.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		data, err := ParseHeader(payload)
		if err != nil {
			if data != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("failure %v with data %q", err, data)
			}
			return
		}
		n := binary.LittleEndian.Uint32(payload[4:8])
		if binary.LittleEndian.Uint32(payload[0:4]) != headerData || uint32(len(data)) != n || n > MaxData {
			t.Fatalf("accepted % x as %d bytes", payload[:8], len(data))
		}
		if len(data) > 0 && &data[0] != &payload[HeaderSize] {
			t.Fatal("data is not the payload after the header")
		}
	})
}
