package savedstate

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sampleRecords(rng *rand.Rand, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		body := make([]byte, rng.IntN(300))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		recs[i] = Record{Kind: Kind(1 + rng.IntN(20)), Flags: uint32(rng.IntN(2)), Body: body}
	}
	return recs
}

// TestAnyBufferSizesSameBytes is the chunk contract's property: whatever
// sequence of buffer sizes the caller uses, the concatenated output is the
// same stream, every call follows the three-outcome rules, and TooSmall
// writes nothing.
func TestAnyBufferSizesSameBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for iter := 0; iter < 300; iter++ {
		recs := sampleRecords(rng, rng.IntN(12))
		s, err := NewSaverID(ScopeChannel, []byte("identity"), recs, 42)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(s.Bytes())
		var got []byte
		for calls := 0; ; calls++ {
			if calls > 10000 {
				t.Fatal("no progress")
			}
			buf := make([]byte, rng.IntN(700))
			for i := range buf {
				buf[i] = 0xEE
			}
			filled, required, p := s.Continue(buf)
			switch p {
			case TooSmall:
				if filled != 0 || required <= len(buf) || !bytes.Equal(buf, bytes.Repeat([]byte{0xEE}, len(buf))) {
					t.Fatalf("TooSmall: filled %d required %d buf %d, or buffer touched", filled, required, len(buf))
				}
				continue
			case Overflow:
				if filled == 0 || required == 0 {
					t.Fatalf("Overflow: filled %d required %d", filled, required)
				}
				// The next record did not fit in what was left.
				if required <= len(buf)-filled {
					t.Fatalf("Overflow with room for the next record: filled %d required %d buf %d", filled, required, len(buf))
				}
			case Done:
				if required != 0 {
					t.Fatalf("Done with required %d", required)
				}
			}
			got = append(got, buf[:filled]...)
			if p == Done {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("iteration %d: chunked stream differs from the whole", iter)
		}
		if f, r, p := s.Continue(make([]byte, 1000)); f != 0 || r != 0 || p != Done {
			t.Fatalf("Continue after Done: %d %d %v", f, r, p)
		}
	}
}

func TestTooSmallRequiredIsNextRecord(t *testing.T) {
	s, err := NewSaverID(ScopeChannel, nil, []Record{{Kind: 1, Body: make([]byte, 100)}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, req, p := s.Continue(nil)
	if p != TooSmall || req != HeaderSize+8 {
		t.Fatalf("empty buffer: %v required %d, want TooSmall and the Begin record's %d bytes", p, req, HeaderSize+8)
	}
	buf := make([]byte, req)
	f, req2, p := s.Continue(buf)
	if p != Overflow || f != req || req2 != HeaderSize+104 {
		t.Fatalf("got %v filled %d required %d", p, f, req2)
	}
}

// restoreChunks feeds a stream cut at random record boundaries.
func restoreChunks(t *testing.T, rng *rand.Rand, s *Saver) (*Restorer, error) {
	r := NewRestorer(Limits{})
	start := 0
	for i := 0; i < len(s.ends); {
		j := i + 1 + rng.IntN(3)
		j = min(j, len(s.ends))
		done, err := r.Feed(s.stream[start:s.ends[j-1]])
		if err != nil {
			return r, err
		}
		if done != (j == len(s.ends)) {
			t.Fatalf("done=%v after record %d of %d", done, j, len(s.ends))
		}
		start, i = s.ends[j-1], j
	}
	return r, nil
}

func TestRestoreRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	for iter := 0; iter < 100; iter++ {
		recs := sampleRecords(rng, rng.IntN(10))
		s, err := NewSaver(ScopeBus, []byte{1, 2, 3}, recs)
		if err != nil {
			t.Fatal(err)
		}
		r, err := restoreChunks(t, rng, s)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Done() || r.Begin().Scope != ScopeBus || !bytes.Equal(r.Begin().Identity, []byte{1, 2, 3}) || r.Begin().Records != len(recs)+2 {
			t.Fatalf("begin %+v", r.Begin())
		}
		got := r.Records()
		if len(got) != len(recs) {
			t.Fatalf("%d records, want %d", len(got), len(recs))
		}
		for i := range recs {
			if got[i].Kind != recs[i].Kind || got[i].Flags != recs[i].Flags || !bytes.Equal(got[i].Body, recs[i].Body) {
				t.Fatalf("record %d differs", i)
			}
		}
	}
}

func TestRestoreRejects(t *testing.T) {
	recs := []Record{{Kind: 1, Body: []byte("first")}, {Kind: 2, Flags: FlagCritical, Body: []byte("second record")}, {Kind: 3}}
	s, _ := NewSaverID(ScopeChannel, []byte("id"), recs, 5)
	other, _ := NewSaverID(ScopeChannel, []byte("id"), recs, 6)
	whole := s.Bytes()
	rec := func(sv *Saver, i int) []byte { return sv.stream[sv.recordStart(i):sv.ends[i]] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	cases := map[string][][]byte{
		"truncated in a record": {whole[:len(whole)-3]},
		"missing End":           {whole[:s.ends[3]]},
		"reordered":             {cat(rec(s, 0), rec(s, 2), rec(s, 1), rec(s, 3), rec(s, 4))},
		"record repeated":       {cat(rec(s, 0), rec(s, 1), rec(s, 1))},
		"foreign chunk":         {cat(rec(s, 0), rec(s, 1)), rec(other, 2)},
		"no Begin":              {whole[s.ends[0]:]},
		"data after End":        {whole, rec(s, 1)},
		"garbage":               {[]byte("not a saved state at all, just bytes that are long enough")},
		"empty chunk":           {nil},
	}
	// Every single-byte corruption is caught.
	for i := 0; i < len(whole); i++ {
		b := bytes.Clone(whole)
		b[i] ^= 0x40
		cases["flip byte "+itoa(i)] = [][]byte{b}
	}
	for name, chunks := range cases {
		r := NewRestorer(Limits{})
		var err error
		for _, c := range chunks {
			if _, err = r.Feed(c); err != nil {
				break
			}
		}
		if err == nil && name != "missing End" {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name == "missing End" {
			if err != nil || r.Done() {
				t.Errorf("missing End: err %v done %v", err, r.Done())
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v is not ErrInvalid", name, err)
		}
		if r.Done() || r.Records() != nil {
			t.Errorf("%s: failed restore still offers records", name)
		}
		if _, err2 := r.Feed(whole); err2 == nil {
			t.Errorf("%s: restorer not sticky", name)
		}
	}
}

func TestLimits(t *testing.T) {
	recs := []Record{{Kind: 1, Body: make([]byte, 1000)}, {Kind: 1, Body: make([]byte, 1000)}}
	s, _ := NewSaver(ScopeChannel, nil, recs)
	if _, _, err := Parse(s.Bytes(), Limits{MaxBytes: 1500}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MaxBytes: %v", err)
	}
	if _, _, err := Parse(s.Bytes(), Limits{MaxRecords: 3}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MaxRecords: %v", err)
	}
	if _, err := NewSaver(ScopeChannel, nil, []Record{{Kind: KindEnd}}); err == nil {
		t.Fatal("reserved kind accepted")
	}
	if _, err := NewSaver(ScopeChannel, nil, []Record{{Kind: 1, Body: make([]byte, MaxBody+1)}}); err == nil {
		t.Fatal("oversized body accepted")
	}
}

func TestDecoder(t *testing.T) {
	var e Encoder
	e.U8(1).U16(2).U32(3).U64(4).Bool(true).Bytes([]byte("xy")).Raw([]byte{9, 9})
	d := NewDecoder(e.Body())
	if d.U8() != 1 || d.U16() != 2 || d.U32() != 3 || d.U64() != 4 || !d.Bool() || string(d.Bytes(10)) != "xy" || !bytes.Equal(d.Raw(2), []byte{9, 9}) || d.Err() != nil {
		t.Fatalf("round trip failed: %v", d.Err())
	}
	for name, fn := range map[string]func(d *Decoder){
		"short":     func(d *Decoder) { d.U64() },
		"leftover":  func(d *Decoder) { d.U8() },
		"bad bool":  func(d *Decoder) { d.Bool(); d.Raw(1) },
		"big bytes": func(d *Decoder) { d.Bytes(1) },
		"big count": func(d *Decoder) { d.Count(8) },
	} {
		d := NewDecoder([]byte{7, 0, 0, 0, 1, 2})
		fn(d)
		if !errors.Is(d.Err(), ErrInvalid) {
			t.Errorf("%s: %v", name, d.Err())
		}
	}
}

// TestDecoderFailed: mid-body, Failed reports only a failure, while Err
// also counts the bytes still to read; a loop over a body's elements
// that tested Err would never run.
func TestDecoderFailed(t *testing.T) {
	d := NewDecoder([]byte{1, 2, 3, 4, 5})
	d.U8()
	if d.Failed() || d.Err() == nil {
		t.Fatalf("mid-body: Failed %v, Err %v", d.Failed(), d.Err())
	}
	d.U32()
	if d.Failed() || d.Err() != nil {
		t.Fatalf("at the end: Failed %v, Err %v", d.Failed(), d.Err())
	}
	d.U8()
	if !d.Failed() || !errors.Is(d.Err(), ErrInvalid) {
		t.Fatalf("past the end: Failed %v, Err %v", d.Failed(), d.Err())
	}
	d = NewDecoder([]byte{1, 2})
	d.Fail("a rule")
	if !d.Failed() {
		t.Fatal("Fail: not Failed")
	}
}

// TestGoldenV1 keeps a format-1 state as a file: a release that changes
// the format must still read it (go test -update rewrites it).
func TestGoldenV1(t *testing.T) {
	recs := []Record{{Kind: 1, Flags: FlagCritical, Body: []byte("channel")}, {Kind: 7, Body: []byte{1, 2, 3, 4, 5}}}
	s, err := NewSaverID(ScopeChannel, []byte("golden identity"), recs, 0x0123456789ABCDEF)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", "v1-container.state")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, s.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(s.Bytes(), want) {
		t.Fatal("format-1 encoding changed; golden file differs")
	}
	b, got, err := Parse(want, Limits{})
	if err != nil || len(got) != 2 || string(b.Identity) != "golden identity" || b.SaveID != 0x0123456789ABCDEF {
		t.Fatalf("golden file does not restore: %v %+v", err, b)
	}
}

func itoa(i int) string {
	return string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// FuzzRestore feeds arbitrary bytes, cut into chunks at arbitrary points,
// to a Restorer: it must never panic, and what it accepts must re-save to
// an equal state.
func FuzzRestore(f *testing.F) {
	s, _ := NewSaverID(ScopeChannel, []byte("id"), []Record{{Kind: 1, Body: []byte("abc")}, {Kind: 2}}, 3)
	f.Add(s.Bytes(), uint16(0))
	f.Add(s.Bytes(), uint16(40))
	f.Add([]byte("VMBS"), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		r := NewRestorer(Limits{MaxBytes: 1 << 20})
		c := min(int(cut), len(data))
		var err error
		done := false
		for _, chunk := range [][]byte{data[:c], data[c:]} {
			if len(chunk) == 0 {
				continue
			}
			if done, err = r.Feed(chunk); err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v is not ErrInvalid", err)
				}
				return
			}
		}
		if !done {
			return
		}
		b := r.Begin()
		s2, err := NewSaverID(b.Scope, b.Identity, r.Records(), b.SaveID)
		if err != nil {
			t.Fatalf("accepted state does not re-save: %v", err)
		}
		if !bytes.Equal(s2.Bytes(), data) {
			t.Fatalf("accepted state re-saves differently")
		}
	})
}

// TestEncoderGrow: Grow reserves room without changing the body, so that
// a body of the size reserved is built without growing.
func TestEncoderGrow(t *testing.T) {
	var e Encoder
	e.U16(0x0201).Grow(12)
	before := cap(e.Body())
	e.U32(0x06050403).U64(0x0e0d0c0b0a090807)
	if got := e.Body(); !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}) || cap(got) != before {
		t.Fatalf("body %v, capacity %d then %d", got, before, cap(got))
	}
	if cap(e.Grow(0).Body()) != before {
		t.Fatal("Grow(0) reallocated")
	}
}
