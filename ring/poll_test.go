package ring

import (
	"encoding/binary"
	"errors"
	"testing"
)

// TestPoll: Poll sees a published packet and only a published one, and a
// hostile write index makes it say "look", which Next then refuses.
func TestPoll(t *testing.T) {
	region := newRegion(t, 4096)
	w, r := mustWriter(t, region), mustReader(t, region)
	if r.Poll() {
		t.Fatal("Poll on an empty ring")
	}
	if err := w.WriteInBand(1, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if r.Poll() {
		t.Fatal("Poll saw a packet not yet committed")
	}
	w.Commit()
	if !r.Poll() {
		t.Fatal("Poll missed a committed packet")
	}
	var p Packet
	if err := r.Next(&p); err != nil {
		t.Fatal(err)
	}
	if r.Poll() {
		t.Fatal("Poll after the packet was read")
	}
	r.Commit()
	binary.LittleEndian.PutUint32(region[WriteIndexOffset:], 3) // not a multiple of 8
	if !r.Poll() {
		t.Fatal("Poll ignored a moved write index")
	}
	if err := r.Next(&p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Next after a bad write index: %v", err)
	}
	if r.Poll() {
		t.Fatal("Poll on a failed reader")
	}
}
