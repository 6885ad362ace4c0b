package blk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/govmbus/govmbus/channel"
	"github.com/govmbus/govmbus/gpa"
)

func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestIdentify(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, 1<<20+512, ServerConfig{MaxTransfer: 64 << 10}, ClientConfig{})
	if r.d.Size() != 1<<20+512 || r.d.ReadOnly() || r.d.MaxTransfer() != 64<<10 {
		t.Fatalf("size %d ro %v max %d", r.d.Size(), r.d.ReadOnly(), r.d.MaxTransfer())
	}
}

func TestReadWriteFlush(t *testing.T) {
	leakcheck.Check(t)
	const size = 3 << 20
	r := newRig(t, size, ServerConfig{MaxTransfer: 64 << 10}, ClientConfig{InFlight: 4})
	data := pattern(size, 1)
	// Large, unaligned, split into max-transfer pieces in flight together.
	if n, err := r.d.WriteAt(data[777:], 777); err != nil || n != size-777 {
		t.Fatalf("write: %d %v", n, err)
	}
	if n, err := r.d.WriteAt(data[:777], 0); err != nil || n != 777 {
		t.Fatalf("write head: %d %v", n, err)
	}
	if err := r.d.Flush(); err != nil {
		t.Fatal(err)
	}
	onDisk := make([]byte, size)
	if _, err := r.file.ReadAt(onDisk, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, data) {
		t.Fatal("file differs from what was written")
	}
	got := make([]byte, size)
	if n, err := r.d.ReadAt(got, 0); err != nil || n != size {
		t.Fatalf("read: %d %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	small := make([]byte, 13)
	if _, err := r.d.ReadAt(small, 123457); err != nil || !bytes.Equal(small, data[123457:123457+13]) {
		t.Fatalf("small read: %v", err)
	}
}

// TestReaderAtSemantics: io.ReaderAt/io.WriterAt at and past the end.
func TestReaderAtSemantics(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, 4096, ServerConfig{}, ClientConfig{})
	buf := make([]byte, 100)
	if n, err := r.d.ReadAt(buf, 4096-40); n != 40 || err != io.EOF {
		t.Fatalf("read across the end: %d %v", n, err)
	}
	if n, err := r.d.ReadAt(buf, 4096); n != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d %v", n, err)
	}
	if n, err := r.d.ReadAt(buf[:0], 4096); n != 0 || err != nil {
		t.Fatalf("empty read at the end: %d %v", n, err)
	}
	if _, err := r.d.ReadAt(buf, -1); err == nil {
		t.Fatal("negative offset accepted")
	}
	if n, err := r.d.WriteAt(buf, 4096-10); n != 10 || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("write across the end: %d %v", n, err)
	}
	if n, err := r.d.WriteAt(buf, 5000); n != 0 || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("write past the end: %d %v", n, err)
	}
	var _ io.ReaderAt = r.d
	var _ io.WriterAt = r.d
}

func TestReadOnly(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, 8192, ServerConfig{ReadOnly: true}, ClientConfig{})
	if !r.d.ReadOnly() {
		t.Fatal("identify says writable")
	}
	if _, err := r.d.WriteAt([]byte{1}, 0); !errors.Is(err, StatusReadOnly) {
		t.Fatalf("write: %v", err)
	}
	// Past the client's own check: a raw WRITE request.
	if st := rawRequest(t, r, Request{Op: OpWrite, Length: 512}, 512); st != StatusReadOnly {
		t.Fatalf("raw write: %v", st)
	}
	if _, err := r.d.ReadAt(make([]byte, 8192), 0); err != nil {
		t.Fatal(err)
	}
}

// rawRequest sends req (with a bounce range of ext bytes if ext > 0) on
// the Disk's channel and returns the response status.
func rawRequest(t *testing.T, r *rig, req Request, ext int) Status {
	t.Helper()
	var b [RequestSize]byte
	req.Marshal(b[:])
	return rawPayload(t, r, b[:], ext)
}

func rawPayload(t *testing.T, r *rig, payload []byte, ext int) Status {
	t.Helper()
	var rs []gpa.Range
	if ext > 0 {
		s := r.d.slots[0]
		rs = []gpa.Range{{ByteCount: uint32(ext), PFNs: s.pfns[:gpa.PagesSpanned(0, uint32(ext))]}}
	}
	var out [ResponseSize + 8]byte
	n, err := r.d.ch.SendSynchronousRequest(payload, rs, 0, out[:], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := ParseResponse(out[:n])
	if !ok {
		t.Fatalf("short response %d", n)
	}
	return resp.Status
}

// TestBadRequests: a hostile guest's requests get error statuses and the
// channel keeps serving.
func TestBadRequests(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t, 1<<16, ServerConfig{MaxTransfer: 8192}, ClientConfig{})
	cases := []struct {
		name string
		req  Request
		ext  int
		want Status
	}{
		{"read past the end", Request{Op: OpRead, Offset: 1<<16 - 100, Length: 512}, 512, StatusOutOfRange},
		{"read offset overflow", Request{Op: OpRead, Offset: ^uint64(0) - 10, Length: 512}, 512, StatusOutOfRange},
		{"write past the end", Request{Op: OpWrite, Offset: 1 << 16, Length: 1}, 1, StatusOutOfRange},
		{"read too large", Request{Op: OpRead, Length: 16384}, 8192, StatusTooLarge},
		{"read without buffer", Request{Op: OpRead, Length: 512}, 0, StatusBadRequest},
		{"read of zero bytes", Request{Op: OpRead}, 512, StatusBadRequest},
		{"length differs from buffer", Request{Op: OpRead, Length: 1024}, 512, StatusBadRequest},
		{"identify with buffer", Request{Op: OpIdentify}, 512, StatusBadRequest},
		{"flush with offset", Request{Op: OpFlush, Offset: 1}, 0, StatusBadRequest},
		{"unknown op", Request{Op: 9}, 0, StatusBadRequest},
		{"op zero", Request{Op: 0}, 0, StatusBadRequest},
	}
	for _, c := range cases {
		if st := rawRequest(t, r, c.req, c.ext); st != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
	}
	var b [RequestSize]byte
	Request{Op: OpIdentify}.Marshal(b[:])
	binary.LittleEndian.PutUint32(b[4:], 1)
	if st := rawPayload(t, r, b[:], 0); st != StatusBadRequest {
		t.Errorf("reserved field: %v", st)
	}
	if st := rawPayload(t, r, b[:8], 0); st != StatusBadRequest {
		t.Errorf("short request: %v", st)
	}
	if st := rawPayload(t, r, make([]byte, 48), 0); st != StatusBadRequest {
		t.Errorf("long request: %v", st)
	}
	// Memory outside guest memory: the channel layer's view refuses it.
	Request{Op: OpRead, Length: 4096}.Marshal(b[:])
	var out [ResponseSize + 8]byte
	bad := []gpa.Range{{ByteCount: 4096, PFNs: []uint64{1 << 30}}}
	n, err := r.d.ch.SendSynchronousRequest(b[:], bad, 0, out[:], 5*time.Second)
	if resp, ok := ParseResponse(out[:n]); err != nil || !ok || resp.Status != StatusBadRequest {
		t.Errorf("range outside guest memory: %v %+v", err, resp)
	}
	// Still serving.
	if _, err := r.d.ReadAt(make([]byte, 100), 0); err != nil {
		t.Fatal(err)
	}
	if r.d.ch.State() != channel.StateActive {
		t.Fatalf("state %v", r.d.ch.State())
	}
}

func TestParseRequestRoundTrip(t *testing.T) {
	want := Request{Op: OpWrite, Offset: 1 << 40, Length: 4096}
	b := make([]byte, RequestSize+8)
	want.Marshal(b)
	for _, n := range []int{RequestSize, RequestSize + 7} {
		if got, st := ParseRequest(b[:n]); st != StatusOK || got != want {
			t.Fatalf("len %d: %+v %v", n, got, st)
		}
	}
	b[RequestSize+1] = 1
	if _, st := ParseRequest(b[:RequestSize+7]); st != StatusBadRequest {
		t.Fatal("non-zero padding accepted")
	}
}
