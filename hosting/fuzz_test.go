package hosting

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govmbus/govmbus/savedstate"
)

// FuzzParseHostState feeds a successor's parser of the host state
// arbitrary bytes: the state crosses from the predecessor, and whatever
// it holds must give an error or a state, never a panic. A state that
// parses is encoded again and parses to the same guests and devices.
// Seeds: the golden host states of 3d79281, with an hvsock connection
// and with an hvsock offer, and the corpus in
// testdata/fuzz/FuzzParseHostState.
func FuzzParseHostState(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "host-3d79281.state"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	conn, err := os.ReadFile(filepath.Join("testdata", "golden", "host-hvsock-conn-v1.state"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(conn)
	offer, err := os.ReadFile(filepath.Join("testdata", "golden", "host-hvsock-offer-v1.state"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(offer)
	// A state with guest ids, under the identity the target parses with.
	ids, err := os.ReadFile(filepath.Join("testdata", "golden", "host-guest-id-v1.state"))
	if err != nil {
		f.Fatal(err)
	}
	begin, _, err := StateUses(ids)
	if err != nil {
		f.Fatal(err)
	}
	st, err := parseHostState(ids, string(begin.Identity))
	if err != nil {
		f.Fatal(err)
	}
	if ids, err = st.encode("bus.sock"); err != nil {
		f.Fatal(err)
	}
	f.Add(ids)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseHostState(data, "bus.sock")
		if err != nil {
			if st != nil {
				t.Fatalf("an error and a state: %v", err)
			}
			return
		}
		again, err := st.encode("bus.sock")
		if err != nil {
			t.Fatalf("a parsed state does not encode: %v", err)
		}
		st2, err := parseHostState(again, "bus.sock")
		if err != nil || len(st2.Guests) != len(st.Guests) || len(st2.Devices) != len(st.Devices) || st2.Count != st.Count || len(st2.Conns) != len(st.Conns) {
			t.Fatalf("re-encoded: %v", err)
		}
		for i, g := range st.Guests {
			if st2.Guests[i].ID != g.ID {
				t.Fatalf("guest %d: id %d re-encoded as %d", i, g.ID, st2.Guests[i].ID)
			}
		}
	})
}

// FuzzStateUses feeds the pre-flight arbitrary bytes: a successor runs it
// on the state its predecessor hands it, so it must give an error or the
// kinds, never a panic, however the nested states inside the chunk and
// connection records are broken. What it takes is a state the record
// parser takes, with the same Begin, and the kinds are increasing and
// hold every record's. Seeds: the golden states of every layer, and the
// corpus in testdata/fuzz/FuzzStateUses (a channel state split over
// chunks, a nested state broken under intact records).
func FuzzStateUses(f *testing.F) {
	for _, path := range goldenStates {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		begin, kinds, err := StateUses(data)
		if err != nil {
			if kinds != nil || begin.Version != 0 || begin.Scope != 0 || begin.Records != 0 || begin.Identity != nil || begin.SaveID != 0 {
				t.Fatalf("an error and a result: %v", err)
			}
			return
		}
		b, recs, err := savedstate.Parse(data, savedstate.Limits{MaxBytes: maxHostState})
		if err != nil {
			t.Fatalf("the record parser refuses what the pre-flight took: %v", err)
		}
		if b.Version != begin.Version || b.Scope != begin.Scope || b.Records != begin.Records || b.SaveID != begin.SaveID || !bytes.Equal(b.Identity, begin.Identity) {
			t.Fatalf("Begin %+v, the record parser's %+v", begin, b)
		}
		for i := 1; i < len(kinds); i++ {
			if kinds[i-1] >= kinds[i] {
				t.Fatalf("kinds %v not increasing", kinds)
			}
		}
		for _, r := range recs {
			if _, found := slices.BinarySearch(kinds, r.Kind); !found {
				t.Fatalf("kind %#04x of a record not in %v", uint16(r.Kind), kinds)
			}
		}
	})
}

// FuzzDecodePhases: the phase timings come from the predecessor (the
// environment of an exec, the note of a spawned handover), so any text
// must decode or be refused, never panic; a refusal starts the phases
// anew, as if none were handed on. What decodes is encoded again to the
// same steps and figures, and lists without a panic.
func FuzzDecodePhases(f *testing.F) {
	paused := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, v string) {
		p, handed, ok := decodePhases(v, paused)
		if !ok {
			if len(p.names) != 0 || len(p.ms) != 0 || !p.since.Equal(paused) || !p.last.Equal(paused) || p.first != "startup" || !handed.IsZero() {
				t.Fatalf("refused %q, but the phases are %+v, handed %v", v, p, handed)
			}
			return
		}
		if len(p.names) != len(p.ms) || len(p.names) != strings.Count(v, ";") {
			t.Fatalf("%q: %d names, %d figures", v, len(p.names), len(p.ms))
		}
		// encode stamps the time now: give it back the handover's.
		enc := p.encode()
		var steps string
		if i := strings.IndexByte(enc, ';'); i >= 0 {
			steps = enc[i:]
		}
		again, handed2, ok := decodePhases(strconv.FormatInt(handed.UnixNano(), 10)+steps, paused)
		if !ok || !handed2.Equal(handed) || !slices.Equal(again.names, p.names) || !slices.EqualFunc(again.ms, p.ms, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) {
			t.Fatalf("%q encoded again as %q: %+v, %v", v, steps, again, ok)
		}
		for _, ph := range p.list() {
			if ph.Duration < 0 {
				t.Fatalf("%q: step %q of %v", v, ph.Name, ph.Duration)
			}
		}
	})
}
