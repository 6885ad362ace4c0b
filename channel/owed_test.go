package channel

import (
	"errors"
	"testing"

	"github.com/govmbus/govmbus/ring"
)

// TestOwedSignals: after a restore the guest is signalled exactly when its
// ring says a signal may have been lost with the old process.
func TestOwedSignals(t *testing.T) {
	region := func() []byte {
		b := make([]byte, ring.ControlSize+4096)
		must(t, ring.Format(b, true))
		return b
	}
	in, out := region(), region()
	if owed(in, out) {
		t.Fatal("empty rings owe nothing")
	}
	// Host→guest ring: data waiting, the guest's reader unmasked.
	w, err := ring.NewWriter(out)
	must(t, err)
	must(t, w.WriteInBand(1, 0, make([]byte, 64)))
	w.Commit()
	if !owed(in, out) {
		t.Fatal("unmasked reader with data waiting: owed")
	}
	r, err := ring.NewReader(out)
	must(t, err)
	r.DisableInterrupts()
	if owed(in, out) {
		t.Fatal("masked reader (draining): not owed")
	}
	var p ring.Packet
	must(t, r.Next(&p))
	r.Commit()
	r.EnableInterrupts()
	// Guest→host ring: the guest's writer asked for space (pending send
	// size), which the host's reader has since freed.
	gw, err := ring.NewWriter(in)
	must(t, err)
	for {
		err := gw.WriteInBand(2, 0, make([]byte, 200))
		if errors.Is(err, ring.ErrFull) {
			break
		}
		must(t, err)
	}
	gw.Commit()
	ready, err := gw.WaitFor(200, 0)
	must(t, err)
	if ready || owed(in, out) {
		t.Fatal("full ring, writer waiting: nothing freed yet, not owed")
	}
	hr, err := ring.NewReader(in)
	must(t, err)
	for hr.Next(&p) == nil {
	}
	hr.Commit()
	if !owed(in, out) {
		t.Fatal("writer's pending send size met: owed")
	}
}
