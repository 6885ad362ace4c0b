package ring

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

func newRegion(t testing.TB, dataSize int) []byte {
	t.Helper()
	return make([]byte, ControlSize+dataSize)
}

func mustWriter(t testing.TB, region []byte) *Writer {
	t.Helper()
	w, err := NewWriter(region)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustReader(t testing.TB, region []byte) *Reader {
	t.Helper()
	r, err := NewReader(region)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestKnownAnswerDPDK checks the three-packet ring of WIRE.md §8 against the
// hash the DPDK VMBus library produces for the same input.
func TestKnownAnswerDPDK(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	for i, s := range []string{"hello", "vmbus-go", "ring-buffer-!"} {
		if err := w.WriteInBand(uint64(i+1), 0, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	w.Commit()
	if got := binary.LittleEndian.Uint32(region[0:]); got != 104 {
		t.Fatalf("write index %d, want 104", got)
	}
	sum := sha256.Sum256(region)
	const want = "72e700ad030ffa352a251a0d476cbd1c0c7e8ac6b8b4fb92dd6ec6118a43548c"
	if hex.EncodeToString(sum[:]) != want {
		t.Fatalf("sha256 %x, want %s\ndata: % x", sum, want, region[ControlSize:ControlSize+104])
	}
	// Nothing but the write index changed in the control page.
	if !bytes.Equal(region[4:ControlSize], make([]byte, ControlSize-4)) {
		t.Fatal("writer changed control page fields other than the write index")
	}
}

func TestKnownAnswerGPADirect(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	p := &OutPacket{
		Type: TypeGPADirect, Flags: FlagCompletionRequested, TransactionID: 7,
		Ranges: []gpa.Range{
			{ByteCount: 0x20, ByteOffset: 0x10, PFNs: []uint64{0x12345}},
			{ByteCount: 4096, ByteOffset: 0, PFNs: []uint64{0x12346}},
		},
	}
	if err := w.Write(p, []byte{0xca, 0xfe}); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	want, _ := hex.DecodeString("" +
		"0900070008000100" + "0700000000000000" +
		"0000000002000000" +
		"2000000010000000" + "4523010000000000" +
		"0010000000000000" + "4623010000000000" +
		"cafe000000000000" +
		"0000000000000000")
	if got := region[ControlSize : ControlSize+len(want)]; !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
	r := mustReader(t, region)
	var pk Packet
	err := r.Next(&pk)
	if err != nil {
		t.Fatal(err)
	}
	if pk.Type != TypeGPADirect || pk.TransactionID != 7 || !pk.CompletionRequested() || len(pk.Ranges) != 2 ||
		pk.Ranges[1].PFNs[0] != 0x12346 || pk.Ranges[0].ByteOffset != 0x10 || !bytes.Equal(pk.Payload(), []byte{0xca, 0xfe, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("read back %+v", pk)
	}
}

func TestCapacity127(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	var n int
	for ; ; n++ {
		err := w.WriteInBand(uint64(n), 0, []byte("12345678"))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 127 {
		t.Fatalf("%d packets fit, want 127", n)
	}
	// Still full after committing: the full check is about the reader.
	w.Commit()
	if err := w.WriteInBand(0, 0, []byte("x")); !errors.Is(err, ErrFull) {
		t.Fatalf("write into full ring: %v", err)
	}
	r := mustReader(t, region)
	for i := 0; i < 127; i++ {
		var p Packet
		err := r.Next(&p)
		if err != nil || p.TransactionID != uint64(i) {
			t.Fatalf("packet %d: %v %v", i, p.TransactionID, err)
		}
	}
	if err := r.Next(new(Packet)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after 127: %v", err)
	}
	r.Commit()
	if err := w.WriteInBand(0, 0, []byte("x")); err != nil {
		t.Fatalf("write after reader freed space: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	// 16 + 4064 + 8 = 4088 = size-8: the largest packet that fits.
	if err := w.WriteInBand(1, 0, make([]byte, 4064)); err != nil {
		t.Fatalf("size-8 packet: %v", err)
	}
	w.Revert()
	if err := w.WriteInBand(1, 0, make([]byte, 4065)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized packet: %v", err)
	}
	if err := w.WriteInBand(1, 0, make([]byte, MaxPacketLen)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("packet over descriptor limit: %v", err)
	}
	if w.Buffered() != 0 {
		t.Fatal("failed writes left bytes in the batch")
	}
}

func TestScatterGatherEqualsConcatenation(t *testing.T) {
	a, b := newRegion(t, 4096), newRegion(t, 4096)
	wa, wb := mustWriter(t, a), mustWriter(t, b)
	if err := wa.WriteInBand(9, FlagCompletionRequested, []byte("ab"), nil, []byte("cdefghijk")); err != nil {
		t.Fatal(err)
	}
	if err := wb.WriteInBand(9, FlagCompletionRequested, []byte("abcdefghijk")); err != nil {
		t.Fatal(err)
	}
	wa.Commit()
	wb.Commit()
	if !bytes.Equal(a, b) {
		t.Fatal("pieces differ from one buffer")
	}
}

func TestTransferPagesRoundTrip(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	p := &OutPacket{Type: TypeTransferPages, Flags: FlagCompletionRequested, TransactionID: 5,
		TransferPageSet: 0xBEEF, SenderOwnsSet: true,
		TransferRanges: []TransferRange{{Count: 100, Offset: 0}, {Count: 7, Offset: 4096}}}
	if err := w.Write(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	w.Commit()
	if off8 := binary.LittleEndian.Uint16(region[ControlSize+2:]); off8 != 5 {
		t.Fatalf("data offset %d, want 5 (16 + 8 + 2*8 bytes)", off8)
	}
	r := mustReader(t, region)
	var got Packet
	err := r.Next(&got)
	if err != nil {
		t.Fatal(err)
	}
	if got.TransferPageSet != 0xBEEF || !got.SenderOwnsSet || len(got.TransferRanges) != 2 ||
		got.TransferRanges[1] != (TransferRange{Count: 7, Offset: 4096}) || got.Payload()[0] != 'x' {
		t.Fatalf("read back %+v", got)
	}
}

// TestWrapAtEveryOffset starts the ring at each 8-byte position so that
// descriptors, headers, payloads and footers each get split by the end.
func TestWrapAtEveryOffset(t *testing.T) {
	const size = 4096
	for start := 0; start < size; start += 8 {
		region := newRegion(t, size)
		binary.LittleEndian.PutUint32(region[0:], uint32(start))
		binary.LittleEndian.PutUint32(region[4:], uint32(start))
		w, r := mustWriter(t, region), mustReader(t, region)
		payload := []byte("0123456789abcdefghijklmnopqrstuvwxyz!")
		gp := &OutPacket{Type: TypeGPADirect, Flags: FlagCompletionRequested, TransactionID: 2,
			Ranges: []gpa.Range{{ByteCount: 9000, ByteOffset: 8, PFNs: []uint64{1, 2, 3}}}}
		if err := w.WriteInBand(1, 0, payload); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(gp, payload[:3]); err != nil {
			t.Fatal(err)
		}
		w.Commit()
		var p Packet
		err := r.Next(&p)
		if err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		if got := p.AppendPayload(nil); !bytes.Equal(got[:len(payload)], payload) || p.TransactionID != 1 {
			t.Fatalf("start %d: payload %q", start, got)
		}
		a, b := p.Segments()
		if len(a)+len(b) != p.PayloadLen() || !bytes.Equal(p.Payload()[:len(payload)], payload) {
			t.Fatalf("start %d: segments and payload disagree", start)
		}
		var q Packet
		err = r.Next(&q)
		if err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		if len(q.Ranges) != 1 || q.Ranges[0].PFNs[2] != 3 || q.Ranges[0].ByteCount != 9000 || string(q.Payload()[:3]) != "012" {
			t.Fatalf("start %d: gpa packet %+v", start, q)
		}
		// Footer of the second packet holds its start index.
		footerAt := (int(q.Offset) + int(q.Len) - 8) % size
		var f [8]byte
		for i := range f {
			f[i] = region[ControlSize+(footerAt+i)%size]
		}
		if binary.LittleEndian.Uint64(f[:]) != uint64(q.Offset)<<32 {
			t.Fatalf("start %d: footer %x", start, f)
		}
		r.Commit()
		if got := binary.LittleEndian.Uint32(region[4:]); got != binary.LittleEndian.Uint32(region[0:]) {
			t.Fatalf("start %d: read index %d != write index %d", start, got, binary.LittleEndian.Uint32(region[0:]))
		}
	}
}

func TestRevert(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	w.WriteInBand(1, 0, []byte("keep"))
	w.Commit()
	w.WriteInBand(2, 0, []byte("drop"))
	w.Revert()
	w.WriteInBand(3, 0, []byte("next"))
	w.Commit()
	r := mustReader(t, region)
	var ids []uint64
	for {
		var p Packet
		err := r.Next(&p)
		if err != nil {
			break
		}
		ids = append(ids, p.TransactionID)
	}
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 3 {
		t.Fatalf("ids %v, want [1 3]", ids)
	}
	// A reverted read batch is read again.
	r.Revert()
	var p Packet
	err := r.Next(&p)
	if err != nil || p.TransactionID != 1 {
		t.Fatalf("after reader revert: %v %v", p.TransactionID, err)
	}
}

// TestUnread: Unread gives back the last packet read and only it; the
// packets read before it stay read, and Commit publishes up to them.
func TestUnread(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	for id := uint64(1); id <= 3; id++ {
		w.WriteInBand(id, 0, []byte("pkt"))
	}
	w.Commit()
	r := mustReader(t, region)
	next := func() uint64 {
		t.Helper()
		var p Packet
		if err := r.Next(&p); err != nil {
			t.Fatal(err)
		}
		return p.TransactionID
	}
	if r.Unread() {
		t.Fatal("Unread before any Next reported a packet")
	}
	next()
	if id := next(); id != 2 {
		t.Fatalf("second packet %d", id)
	}
	if !r.Unread() {
		t.Fatal("Unread after Next reported none")
	}
	if r.Unread() {
		t.Fatal("a second Unread reported a packet")
	}
	if id := next(); id != 2 {
		t.Fatalf("after Unread: packet %d, want 2 again", id)
	}
	r.Unread()
	r.Commit() // publishes packet 1 only
	if r.Unread() {
		t.Fatal("Unread after Commit reported a packet")
	}
	r2 := mustReader(t, region)
	var p Packet
	if err := r2.Next(&p); err != nil || p.TransactionID != 2 {
		t.Fatalf("a new reader starts at packet %d (%v), want 2", p.TransactionID, err)
	}
}

func TestPacketUseAfterCommitPanics(t *testing.T) {
	region := newRegion(t, 4096)
	w := mustWriter(t, region)
	w.WriteInBand(1, 0, []byte("x"))
	w.Commit()
	r := mustReader(t, region)
	var p Packet
	err := r.Next(&p)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Payload()
	r.Commit()
	defer func() {
		if recover() == nil {
			t.Fatal("Payload after Commit did not panic")
		}
	}()
	_ = p.Payload()
}

func TestBadRegion(t *testing.T) {
	for _, n := range []int{0, ControlSize, ControlSize + 100, ControlSize + 4096 + 8} {
		if _, err := NewWriter(make([]byte, n)); err == nil || errors.Is(err, ErrCorrupt) {
			t.Errorf("region of %d bytes: %v", n, err)
		}
	}
	if _, err := NewReader(make([]byte, ControlSize+4096+1)[1:]); err == nil {
		t.Error("misaligned region accepted")
	}
}

// TestStreamMirroredSeeds runs a writer and a reader goroutine on a small
// ring with random packet sizes drawn from the same seed on both sides, so
// the reader knows exactly what must arrive.
func TestStreamMirroredSeeds(t *testing.T) {
	const packets = 200000
	n := packets
	if testing.Short() || raceEnabled {
		n = 20000
	}
	region := newRegion(t, 8192)
	// Start near the wrap point.
	binary.LittleEndian.PutUint32(region[0:], 8192-64)
	binary.LittleEndian.PutUint32(region[4:], 8192-64)
	w, r := mustWriter(t, region), mustReader(t, region)
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 2048)
		for i := 0; i < n; i++ {
			size := rng.IntN(len(buf))
			for j := range size {
				buf[j] = byte(i + j)
			}
			batchEnd := rng.IntN(4) == 0
			for {
				err := w.WriteInBand(uint64(i), 0, buf[:size/2], buf[size/2:size])
				if err == nil {
					break
				}
				if !errors.Is(err, ErrFull) {
					werr = err
					return
				}
				w.Commit()
				// Let the reader run: on a loaded machine the two may
				// share a thread, and a spin would hold it for a time
				// slice (10 ms) per full ring.
				runtime.Gosched()
			}
			if batchEnd {
				w.Commit()
			}
		}
		w.Commit()
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	got := make([]byte, 0, 2048)
	for i := 0; i < n; {
		var p Packet
		err := r.Next(&p)
		if errors.Is(err, ErrEmpty) {
			r.Commit()
			runtime.Gosched() // as the writer does at a full ring
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		size := rng.IntN(2048)
		rng.IntN(4)
		got = p.AppendPayload(got[:0])
		if p.TransactionID != uint64(i) || len(got) != PayloadLen(size) {
			t.Fatalf("packet %d: id %d len %d want %d", i, p.TransactionID, len(got), PayloadLen(size))
		}
		for j := 0; j < size; j++ {
			if got[j] != byte(i+j) {
				t.Fatalf("packet %d byte %d: %d", i, j, got[j])
			}
		}
		i++
		if i%7 == 0 {
			r.Commit()
		}
	}
	r.Commit()
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
}
