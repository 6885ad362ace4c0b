package host

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/savedstate"
)

// goldenDevice has the identity of the device the golden bus state was
// saved with.
type goldenDevice struct{}

func (goldenDevice) Offer() OfferSpec {
	return OfferSpec{InterfaceType: protocol.MustParseGUID("33333333-0000-0000-0000-000000000000"), InterfaceInstance: protocol.MustParseGUID("11111111-2222-3333-4444-555555555555")}
}
func (goldenDevice) Open(*Channel) error { return nil }
func (goldenDevice) Close(*Channel)      {}

func goldenBus(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "bus-v1.state"))
	if err != nil {
		t.Fatalf("%v (go test -run TestGoldenBusState -update creates it)", err)
	}
	return b
}

// TestGoldenBusRestores: the format-1 bus state still decodes and passes
// every check of a restore (what remains, rebuilding the rings and
// events, needs the live descriptors the servicing tests cover).
func TestGoldenBusRestores(t *testing.T) {
	h := New(Config{Devices: []Device{goldenDevice{}}})
	p, err := h.parseBus(goldenBus(t))
	if err != nil {
		t.Fatal(err)
	}
	if !p.conn.Contacted || !p.conn.OffersSent || len(p.chans) != 1 || p.chans[0].State != chanOpen || len(p.gpadls) != 3 {
		t.Fatalf("golden state: %+v, %d channels, %d GPADLs", p.conn, len(p.chans), len(p.gpadls))
	}
	if p.gpadls[0].State != savedTearingDown || p.gpadls[2].State != savedAssembling {
		t.Fatalf("GPADL states %d %d", p.gpadls[0].State, p.gpadls[2].State)
	}
	// Another configuration does not take it.
	if _, err := New(Config{}).parseBus(goldenBus(t)); !errors.Is(err, ErrBadState) {
		t.Fatalf("restored without its device: %v", err)
	}
	// Save → parse → save: the same records.
	_, recs, err := savedstate.Parse(goldenBus(t), savedstate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.conn.encode(), recs[0].Body) || !bytes.Equal(p.chans[0].encode(), recs[1].Body) {
		t.Fatal("records do not re-encode to the same bytes")
	}
	for i, g := range p.gpadls {
		if !bytes.Equal(g.encode(), recs[2+i].Body) {
			t.Fatalf("GPADL record %d re-encodes differently", i)
		}
	}
}

// FuzzRestoreBus feeds arbitrary bytes to the bus-state checks of
// Restore: no panic, and what passes re-encodes to the same records.
func FuzzRestoreBus(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "golden", "bus-v1.state")); err == nil {
		f.Add(b)
	}
	h := New(Config{Devices: []Device{goldenDevice{}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := h.parseBus(data)
		if err != nil {
			if !errors.Is(err, ErrBadState) && !errors.Is(err, savedstate.ErrInvalid) {
				t.Fatalf("error %v matches neither ErrBadState nor ErrInvalid", err)
			}
			return
		}
		_ = p.conn.encode()
		for _, c := range p.chans {
			if _, err := decodeChan(c.encode()); err != nil {
				t.Fatalf("accepted channel re-decodes with %v", err)
			}
		}
		for _, g := range p.gpadls {
			if _, err := decodeGpadl(g.encode()); err != nil {
				t.Fatalf("accepted GPADL re-decodes with %v", err)
			}
		}
	})
}
