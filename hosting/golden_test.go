package hosting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

// goldenStates are the golden saved states of every layer: together they
// hold every record kind this build reads.
var goldenStates = []string{
	filepath.Join("..", "channel", "testdata", "golden", "channel-v1.state"),
	filepath.Join("..", "channel", "testdata", "golden", "channel-completion-v1.state"),
	filepath.Join("..", "channel", "testdata", "golden", "channel-restart-v1.state"),
	filepath.Join("..", "host", "testdata", "golden", "bus-v1.state"),
	// Saved by `vmbus host` built at 3d79281, the last release before
	// kind 0x0005, serviced under stream and disk traffic.
	filepath.Join("testdata", "golden", "host-3d79281.state"),
	filepath.Join("..", "channel", "testdata", "golden", "channel-device-v1.state"),
	filepath.Join("..", "channel", "testdata", "golden", "channel-transfer-pages-v1.state"),
	// Saved by `vmbus host --device echo --hvsock-relay 5000=unix:PATH`
	// serviced with a relayed connection open, 64 KiB on their way to a
	// local server that had stopped reading.
	filepath.Join("testdata", "golden", "host-hvsock-conn-v1.state"),
	// Saved by TestServiceToCarriesOfferNotOpened (-update): an echo
	// device and an hvsock connection offered, not yet opened.
	filepath.Join("testdata", "golden", "host-hvsock-offer-v1.state"),
	// Saved by TestServiceToKeepsGuestIDs (-update): two guests, each
	// with its id.
	filepath.Join("testdata", "golden", "host-guest-id-v1.state"),
}

// TestGoldenStatesCoverEveryKind reads every golden state with this
// build: each checks, nested states included; the host state an older
// release saved parses as a successor would take it and uses only the
// kinds of the first release; and together they use every kind this
// build reads, so that a kind added without a golden state fails here.
func TestGoldenStatesCoverEveryKind(t *testing.T) {
	all := map[savedstate.Kind]bool{}
	for _, path := range goldenStates {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		begin, used, err := StateUses(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if begin.Version != 1 {
			t.Errorf("%s: format %d", path, begin.Version)
		}
		for _, k := range used {
			all[k] = true
		}
		if begin.Scope != scopeHost {
			continue
		}
		st, err := parseHostState(data, string(begin.Identity))
		if err != nil || len(st.Guests) == 0 || st.Guests[0].Channels[len(st.Devices)-1] == nil {
			t.Fatalf("%s: %v (%+v)", path, err, st)
		}
		if strings.Contains(path, "host-3d79281") {
			if m := firstRelease.Missing(used); len(m) != 0 {
				t.Errorf("%s: kinds %v beyond the first release", path, m)
			}
		}
		for _, c := range st.Conns {
			if c.State.Route == "" || len(c.State.Channel) == 0 {
				t.Errorf("%s: connection %+v", path, c)
			}
		}
	}
	for _, k := range savedstate.Supported().Kinds {
		if !all[k] {
			t.Errorf("no golden state holds kind %#04x %s", uint16(k), savedstate.KindName(k))
		}
	}
}
