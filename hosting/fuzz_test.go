package hosting

import (
	"os"
	"path/filepath"
	"testing"
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
