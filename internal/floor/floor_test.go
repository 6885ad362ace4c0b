package floor

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary be the peer.
func TestMain(m *testing.M) {
	if os.Getenv("GOVMBUS_FLOOR_PEER") == "1" {
		if err := ServePeer(func() { fmt.Println("ready") }); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func peer(t *testing.T) []string {
	t.Setenv("GOVMBUS_FLOOR_PEER", "1")
	return []string{os.Args[0], "-test.run=^$"}
}

// TestMeasure runs the four floors against a peer process: every round trip
// is answered (a lost wake-up or a peer stuck in the other mode would
// hang it), the percentiles are ordered, and the peer exits when told.
func TestMeasure(t *testing.T) {
	res, err := Measure(Config{Count: 200, Warmup: 20, PeerCommand: peer(t)})
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]Latency{"eventfd": res.Eventfd, "poller": res.Poller, "raw poller": res.RawPoller, "spin": res.Spin} {
		if l.Count != 200 || l.P50 <= 0 || l.P99 < l.P50 {
			t.Errorf("%s floor %+v", name, l)
		}
	}
}

func TestMeasureRefuses(t *testing.T) {
	if _, err := Measure(Config{Count: 0, PeerCommand: []string{"true"}}); err == nil {
		t.Error("Count 0 accepted")
	}
	// A peer that exits without saying ready.
	_, err := Measure(Config{Count: 10, PeerCommand: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Errorf("a peer that never starts: %v", err)
	}
}
