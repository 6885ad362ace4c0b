package ring

import (
	"encoding/binary"
	"testing"
)

func TestWriterShouldSignal(t *testing.T) {
	for _, tc := range []struct {
		mask, read, oldWrite uint32
		want                 bool
	}{
		{0, 64, 64, true},  // reader was idle on an empty ring
		{1, 64, 64, false}, // reader masked: it is draining
		{0, 32, 64, false}, // reader still had data: it will see the batch
		{0, 96, 64, false}, // read index elsewhere
		{7, 0, 0, false},   // any non-zero mask suppresses
	} {
		if got := WriterShouldSignal(tc.mask, tc.read, tc.oldWrite); got != tc.want {
			t.Errorf("WriterShouldSignal(%d, %d, %d) = %v", tc.mask, tc.read, tc.oldWrite, got)
		}
	}
}

func TestReaderShouldSignal(t *testing.T) {
	for _, tc := range []struct {
		feature            bool
		pss, before, after uint32
		want               bool
	}{
		{true, 1024, 512, 2048, true},   // crossed
		{true, 1024, 1024, 1032, true},  // writable was exactly pss: not enough (needs >)
		{true, 1024, 1032, 2048, false}, // was already enough before
		{true, 1024, 512, 1024, false},  // still not enough after
		{true, 0, 0, 4096, false},       // nobody waits
		{false, 1024, 512, 2048, false}, // feature off
		{true, 1031, 1024, 1032, true},  // low bits ignored: pss 1024
		{true, 7, 0, 4096, false},       // pss rounds down to 0
	} {
		if got := ReaderShouldSignal(tc.feature, tc.pss, tc.before, tc.after); got != tc.want {
			t.Errorf("ReaderShouldSignal(%v, %d, %d, %d) = %v", tc.feature, tc.pss, tc.before, tc.after, got)
		}
	}
}

// TestSignalProtocol walks both endpoints through the interrupt-mask and
// pending-send protocols and checks when each Commit asks for a signal.
func TestSignalProtocol(t *testing.T) {
	region := newRegion(t, 4096)
	if err := Format(region, true); err != nil {
		t.Fatal(err)
	}
	w, r := mustWriter(t, region), mustReader(t, region)

	// Reader idle (mask clear), ring empty: first batch signals once.
	if more, err := r.EnableInterrupts(); more || err != nil {
		t.Fatalf("EnableInterrupts on empty ring: %v %v", more, err)
	}
	w.WriteInBand(1, 0, []byte("a"))
	w.WriteInBand(2, 0, []byte("b"))
	if !w.Commit() {
		t.Fatal("first batch into an empty ring with unmasked reader did not signal")
	}
	// Ring not empty any more: a second batch does not signal.
	w.WriteInBand(3, 0, []byte("c"))
	if w.Commit() {
		t.Fatal("batch into a non-empty ring signalled")
	}
	// Reader drains with the mask set; writer's batches stay silent.
	r.DisableInterrupts()
	for {
		if err := r.Next(new(Packet)); err != nil {
			break
		}
	}
	r.Commit()
	w.WriteInBand(4, 0, []byte("d"))
	if w.Commit() {
		t.Fatal("batch signalled a masked reader")
	}
	// Clear-then-recheck: data arrived while masked, so the reader must
	// not sleep.
	if more, err := r.EnableInterrupts(); !more || err != nil {
		t.Fatalf("EnableInterrupts with data waiting: more=%v err=%v", more, err)
	}
	for {
		if err := r.Next(new(Packet)); err != nil {
			break
		}
	}
	r.Commit()

	// Fill the ring, then ask to be woken for a large packet.
	for {
		if err := w.WriteInBand(9, 0, make([]byte, 200)); err != nil {
			break
		}
	}
	w.Commit()
	ready, err := w.WaitFor(2000, 0)
	if ready || err != nil {
		t.Fatalf("WaitFor on a full ring: %v %v", ready, err)
	}
	pss := binary.LittleEndian.Uint32(region[PendingSendSizeOffset:])
	if pss < 2000+24 || pss%8 != 0 {
		t.Fatalf("pending send size %d", pss)
	}
	// Reading one small packet does not free enough: no signal.
	if err := r.Next(new(Packet)); err != nil {
		t.Fatal(err)
	}
	if r.Commit() {
		t.Fatal("reader signalled before enough space was free")
	}
	// Draining crosses the mark: exactly one signal.
	signals := 0
	for {
		if err := r.Next(new(Packet)); err != nil {
			break
		}
		if r.Commit() {
			signals++
		}
	}
	if signals != 1 {
		t.Fatalf("%d signals while draining, want 1", signals)
	}
	if err := w.WriteInBand(10, 0, make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint32(region[PendingSendSizeOffset:]); got != 0 {
		t.Fatalf("pending send size %d after the write, want 0", got)
	}
}

func TestWaitForReadyAndNoFeature(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	if _, err := w.WaitFor(8, 0); err != ErrNoPendingSend {
		t.Fatalf("WaitFor without feature: %v", err)
	}
	Format(region, true)
	w = mustWriter(t, region)
	if ready, err := w.WaitFor(8, 0); !ready || err != nil {
		t.Fatalf("WaitFor with space: %v %v", ready, err)
	}
	if binary.LittleEndian.Uint32(region[PendingSendSizeOffset:]) != 0 {
		t.Fatal("pending send size left set although space was there")
	}
}

// TestWaitForMidBatch: a writer that finds the ring full in the middle of
// a batch, and publishes the batch only after asking to be woken, is
// woken by the reader once its packet fits, wherever the reader is when
// the batch is published. The reader measures free space against the
// published write index: a request for the packet alone was already met,
// as the reader saw the ring, once it had read enough of what came
// before the batch, and it never signalled.
func TestWaitForMidBatch(t *testing.T) {
	const (
		payload = 64
		wire    = 16 + payload + 8
		old     = 30 // packets published before the batch
	)
	for k := 0; k <= old; k++ { // packets read before the batch is published
		region := newRegion(t, 4096)
		if err := Format(region, true); err != nil {
			t.Fatal(err)
		}
		w, r := mustWriter(t, region), mustReader(t, region)
		for i := range old {
			if err := w.WriteInBand(uint64(i), 0, make([]byte, payload)); err != nil {
				t.Fatal(err)
			}
		}
		w.Commit()
		batch := 0
		for w.WriteInBand(uint64(old+batch), 0, make([]byte, payload)) == nil {
			batch++
		}
		if ready, err := w.WaitFor(payload, 0); ready || err != nil {
			t.Fatalf("WaitFor with %d packets in the batch: ready %v, %v", batch, ready, err)
		}
		woken := false
		read := func() bool {
			if err := r.Next(new(Packet)); err != nil {
				return false
			}
			if r.Commit() && !woken {
				woken = true
				if err := w.WriteInBand(0, 0, make([]byte, payload)); err != nil {
					t.Fatalf("read %d before the publish: signalled, but the packet does not fit: %v", k, err)
				}
			}
			return true
		}
		for range k {
			read()
		}
		w.Commit()
		for read() {
		}
		if !woken {
			t.Fatalf("read %d of %d packets before the batch of %d (%d bytes) was published, then the rest: never signalled the writer, which waits for %d bytes",
				k, old, batch, batch*wire, wire)
		}
	}
}
