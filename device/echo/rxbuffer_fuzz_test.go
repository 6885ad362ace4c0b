package echo

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzParseAnnounce: the server reads every packet that asks for a
// completion as a possible announce, so any payload is one or not, never a
// panic. An announce is the bytes announce writes for its GPADL (the set
// id as read), and an announce of any GPADL reads back; no stream packet,
// whatever its sequence number (the announce's magic included), reads as
// one, or the server would map a buffer instead of echoing it.
func FuzzParseAnnounce(f *testing.F) {
	packers := []*Packer{NewPacker(rxAnnounceSize), NewPacker(64)}
	f.Fuzz(func(t *testing.T, payload []byte) {
		gpadl, set, ok := parseAnnounce(payload)
		if ok {
			want := announce(gpadl)
			binary.LittleEndian.PutUint16(want[16:], set)
			if len(payload) < rxAnnounceSize || !bytes.Equal(payload[:18], want[:18]) {
				t.Fatalf("announce of GPADL %d set %#x from %x", gpadl, set, payload)
			}
		} else if gpadl != 0 || set != 0 {
			t.Fatalf("GPADL %d set %#x from no announce", gpadl, set)
		}
		var word uint64
		if len(payload) >= 8 {
			word = binary.LittleEndian.Uint64(payload)
		}
		if g, s, ok := parseAnnounce(announce(uint32(word))); !ok || g != uint32(word) || s != RxSetID {
			t.Fatalf("announce(%d) reads as %d, %#x, %v", uint32(word), g, s, ok)
		}
		for _, k := range packers {
			if _, _, ok := parseAnnounce(k.Packet(word)); ok {
				t.Fatalf("stream packet %d of %d bytes reads as an announce", word, len(k.buf))
			}
		}
	})
}
