package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func readAll(t *testing.T, b []byte) []Record {
	t.Helper()
	rd := NewReader(bytes.NewReader(b))
	var out []Record
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("record %d: %v", len(out), err)
		}
		rec.Data = append([]byte(nil), rec.Data...)
		out = append(out, rec)
	}
}

// TestRoundTrip: every kind of record comes back with its header, its
// guest's interface and its bytes.
func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte{5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}
	w.Control(7, In, msg)
	w.Packet(7, 3, Out, 6, 1, 0x1122, nil, []byte("hel"), []byte("lo"))
	w.Signal(9, 3, Out)
	w.Event(map[string]any{"event": "servicing started"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, buf.Bytes())
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	if r := recs[0]; r.Kind != KindControl || r.Dir != In || r.Guest != 7 || r.IfName != "guest 7" || !bytes.Equal(r.Data, msg) {
		t.Errorf("control record %+v", r)
	}
	r := recs[1]
	d, err := ParseDescriptor(r.Data)
	if err != nil || r.Kind != KindPacket || r.Channel != 3 || r.Dir != Out || d.Type != 6 || d.Flags != 1 || d.TransactionID != 0x1122 ||
		d.Offset8 != 2 || d.Len8 != 3 || string(r.Data[DescriptorSize:]) != "hello" {
		t.Errorf("packet record %+v, descriptor %+v %v", r, d, err)
	}
	if r := recs[2]; r.Kind != KindSignal || r.Guest != 9 || r.IfName != "guest 9" || len(r.Data) != 0 {
		t.Errorf("signal record %+v", r)
	}
	if r := recs[3]; r.Kind != KindEvent || r.IfName != "host" || string(r.Data) != `{"event":"servicing started"}` {
		t.Errorf("event record %+v %q", r, r.Data)
	}
	if recs[0].Time.IsZero() || recs[3].Time.Before(recs[0].Time) {
		t.Errorf("times %v .. %v", recs[0].Time, recs[3].Time)
	}
}

// TestSnapLen: bytes past the snap length are cut, the record says so
// and keeps the original length.
func TestSnapLen(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Options{SnapLen: 20})
	w.Packet(1, 1, In, 6, 0, 1, nil, make([]byte, 100), nil)
	w.Close()
	recs := readAll(t, buf.Bytes())
	if len(recs) != 1 || len(recs[0].Data) != 20 || recs[0].OrigLen != 116 || recs[0].Flags&FlagTruncated == 0 {
		t.Fatalf("%+v", recs)
	}
}

// TestSnapLenKeepsControl: a control message is recorded whole whatever
// the snap length (the format's promise), while a ring packet beside it
// is cut.
func TestSnapLenKeepsControl(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Options{SnapLen: 20})
	msg := bytes.Repeat([]byte{0xab}, 196) // an OfferChannel's size
	w.Control(1, Out, msg)
	w.Packet(1, 1, In, 6, 0, 1, nil, make([]byte, 100), nil)
	w.Close()
	recs := readAll(t, buf.Bytes())
	if len(recs) != 2 || !bytes.Equal(recs[0].Data, msg) || recs[0].Flags&FlagTruncated != 0 || len(recs[1].Data) != 20 {
		t.Fatalf("%+v", recs)
	}
}

// TestMaxBytesStops: the file never passes the limit, ends with whole
// records, and the records past it are counted as dropped.
func TestMaxBytesStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	const limit = 2000
	w, err := Create(path, Options{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		w.Packet(1, 1, Out, 6, 0, uint64(i), nil, make([]byte, 40), nil)
	}
	st := w.Stats()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if len(b) > limit || int64(len(b)) != st.Bytes {
		t.Fatalf("file of %d bytes, limit %d, stats %+v", len(b), limit, st)
	}
	recs := readAll(t, b)
	if uint64(len(recs)) != st.Records || st.Records+st.Dropped != 100 || st.Dropped == 0 {
		t.Fatalf("%d records read, stats %+v", len(recs), st)
	}
	for i, r := range recs {
		if d, _ := ParseDescriptor(r.Data); d.TransactionID != uint64(i) {
			t.Fatalf("record %d has txid %d", i, d.TransactionID)
		}
	}
}

// TestAppendSection: a second Writer on the file (a servicing's
// successor) adds a section; both sections read back, in order.
func TestAppendSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	w, _ := Create(path, Options{})
	w.Signal(1, 1, In)
	w.Suspend()
	w.Signal(1, 1, In) // held back: counted, not written
	if st := w.Stats(); st.Dropped != 1 {
		t.Errorf("suspended: %+v", st)
	}
	w2, err := Append(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	w2.Signal(1, 2, Out)
	w2.Close()
	b, _ := os.ReadFile(path)
	recs := readAll(t, b)
	if len(recs) != 2 || recs[0].Section != 0 || recs[1].Section != 1 || recs[1].Channel != 2 {
		t.Fatalf("%+v", recs)
	}
}

// TestConcurrentWriters: records from many goroutines are each written
// whole, once.
func TestConcurrentWriters(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Options{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				w.Packet(uint64(g), 1, In, 6, 0, uint64(i), nil, make([]byte, i%50), nil)
			}
		}()
	}
	wg.Wait()
	w.Close()
	seen := map[[2]uint64]bool{}
	for _, r := range readAll(t, buf.Bytes()) {
		d, _ := ParseDescriptor(r.Data)
		k := [2]uint64{r.Guest, d.TransactionID}
		if seen[k] {
			t.Fatalf("record %v twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 1600 {
		t.Fatalf("%d records, want 1600", len(seen))
	}
}

// TestPacketAllocs: recording a packet allocates nothing once its guest
// has an interface.
func TestPacketAllocs(t *testing.T) {
	w, _ := NewWriter(io.Discard, Options{})
	defer w.Close()
	p := make([]byte, 64)
	hdr := make([]byte, 8)
	w.Packet(1, 1, In, 9, 1, 1, hdr, p, nil)
	if n := testing.AllocsPerRun(100, func() {
		w.Packet(1, 1, In, 9, 1, 1, hdr, p, nil)
		w.Signal(1, 1, Out)
		w.Control(1, Out, p)
	}); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}

// TestReaderRejects: files that are not a capture are errors, not
// records or panics.
func TestReaderRejects(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Options{})
	w.Signal(1, 1, In)
	w.Close()
	good := buf.Bytes()
	for name, b := range map[string][]byte{
		"empty after SHB magic": good[:10],
		"cut block":             good[:len(good)-3],
		"not pcapng":            []byte("hello world, this is text"),
		"bad trailing length":   append(append([]byte(nil), good[:len(good)-4]...), 1, 0, 0, 0),
	} {
		rd := NewReader(bytes.NewReader(b))
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = rd.Next()
		}
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkPacket(b *testing.B) {
	w, _ := NewWriter(io.Discard, Options{})
	defer w.Close()
	p := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		w.Packet(1, 1, In, 6, 0, 1, nil, p, nil)
	}
}

// TestSnapLenKeepsEvents: the snap length cuts packets, not events.
func TestSnapLenKeepsEvents(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Options{SnapLen: 8})
	w.Event(map[string]string{"msg": "servicing complete, a long line"})
	w.Close()
	recs := readAll(t, buf.Bytes())
	if len(recs) != 1 || recs[0].Flags&FlagTruncated != 0 || string(recs[0].Data) != `{"msg":"servicing complete, a long line"}` {
		t.Fatalf("%+v", recs)
	}
}

// TestBadOptionsLeaveFile: Create and Append with options they refuse (a
// snap length out of range, a limit too small for a section's start)
// fail before they touch the file: it keeps what it had, and a file that
// was not there is not made.
func TestBadOptionsLeaveFile(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("not a capture, but someone's"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{SnapLen: -1}, {SnapLen: MaxSnapLen + 1}, {MaxBytes: 10}} {
		for name, open := range map[string]func(string, Options) (*Writer, error){"Create": Create, "Append": Append} {
			if w, err := open(keep, o); err == nil {
				w.Close()
				t.Fatalf("%s with %+v: no error", name, o)
			}
			if b, _ := os.ReadFile(keep); string(b) != "not a capture, but someone's" {
				t.Fatalf("%s with %+v left the file %q", name, o, b)
			}
			absent := filepath.Join(dir, "absent")
			if w, err := open(absent, o); err == nil {
				w.Close()
				t.Fatalf("%s with %+v: no error", name, o)
			}
			if _, err := os.Stat(absent); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s with %+v made the file (%v)", name, o, err)
			}
		}
	}
}

// TestEmptyIsNoCapture: an empty input is no capture (every capture, even
// one without a record, starts with a section header), not one without
// records: `vmbus capture read` of an empty file exits 1.
func TestEmptyIsNoCapture(t *testing.T) {
	if _, err := NewReader(bytes.NewReader(nil)).Next(); !errors.Is(err, ErrFormat) {
		t.Fatalf("Next of an empty input: %v, want ErrFormat", err)
	}
	var b bytes.Buffer
	w, err := NewWriter(&b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := NewReader(&b).Next(); err != io.EOF {
		t.Fatalf("Next of a capture without records: %v, want io.EOF", err)
	}
}

// TestFilterTypeNames: a type term names a control message or packet type
// (any case), or the numbered name of one Summarize does not know; a name
// that is none of them is refused, not a filter that quietly matches
// nothing.
func TestFilterTypeNames(t *testing.T) {
	for _, ok := range []string{"OfferChannel", "openchannel", "InBand", "completion", "GpaDirect", "PacketType3", "MessageType(99)"} {
		if _, err := ParseFilter("type=" + ok); err != nil {
			t.Errorf("type=%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"NoSuchType", "PacketType", "PacketType99999", "MessageType(x)", "In Band"} {
		if _, err := ParseFilter("type=" + bad); err == nil {
			t.Errorf("type=%s accepted", bad)
		}
	}
}
