package channel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

// deviceFixture is a server channel with VSP state, open and paused, its
// bus saved and the host restored: state is the channel's saved state.
type deviceFixture struct {
	s     *svc
	state []byte
}

func newDeviceFixture(t *testing.T, dev []byte) *deviceFixture {
	t.Helper()
	s := newSvc(t)
	s.server = configure(t, s.Guest, newVSP(), echo)
	must(t, s.server.Servicing().SetSaveStateCallbacks(func(*Channel) ([]byte, error) { return dev, nil }, nil))
	must(t, s.server.Enable())
	must(t, s.server.Start())
	cl := NewClient()
	must(t, cl.SetClient(s.Client))
	must(t, cl.SetInterface(testType, testInst))
	must(t, cl.SetProcessPacketCallbacks(echo, nil))
	t.Cleanup(func() { cl.Cleanup() })
	must(t, cl.Enable())
	waitState(t, s.server, StateActive)
	must(t, s.server.Pause())
	saved := s.Save(t)
	var buf bytes.Buffer
	must(t, s.server.Save(&buf))
	s.successor(t, saved)
	s.Host.Resume()
	return &deviceFixture{s: s, state: buf.Bytes()}
}

// TestDeviceStateSavedAndRestored: the VSP's bytes travel in the
// channel's state as one record, third, and come back to the restore
// callback once, before the channel is restored; none saves no record.
func TestDeviceStateSavedAndRestored(t *testing.T) {
	want := []byte("ic: negotiated 3.0/3.0, sequence 41")
	f := newDeviceFixture(t, want)
	recs := records(t, f.state)
	if len(recs) < 3 || recs[2].Kind != KindChannelDevice {
		t.Fatalf("records %v, want the device record third", recs)
	}
	var got [][]byte
	n := configure(t, f.s.Guest, newVSP(), echo)
	must(t, n.Servicing().SetSaveStateCallbacks(nil, func(c *Channel, dev []byte) error {
		if st := observe(c); st.restored {
			t.Error("the channel was restored before its VSP's state")
		}
		got = append(got, bytes.Clone(dev))
		return nil
	}))
	must(t, n.Restore(f.state))
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("restore callback got %q, want %q once", got, want)
	}
	must(t, n.Enable())
	must(t, n.Start())

	// A VSP with nothing to save adds no record.
	none := newDeviceFixture(t, nil)
	for _, r := range records(t, none.state) {
		if r.Kind == KindChannelDevice {
			t.Fatal("an empty VSP state saved a device record")
		}
	}
}

// TestDeviceStateRefusedLeavesChannel: a state with VSP bytes is refused
// by a channel without a restore callback, and by a callback that fails;
// neither changes the channel, and the state restores afterwards.
func TestDeviceStateRefusedLeavesChannel(t *testing.T) {
	f := newDeviceFixture(t, []byte{1, 2, 3})
	n := configure(t, f.s.Guest, newVSP(), echo)
	before := observe(n)
	if err := n.Restore(f.state); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("no restore callback: %v", err)
	}
	if after := observe(n); after != before {
		t.Fatalf("channel changed: %+v, was %+v", after, before)
	}
	n2 := configure(t, f.s.Guest, newVSP(), echo)
	fails := true
	must(t, n2.Servicing().SetSaveStateCallbacks(nil, func(*Channel, []byte) error {
		if fails {
			return errors.New("not my state")
		}
		return nil
	}))
	if err := n2.Restore(f.state); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("failing callback: %v", err)
	}
	if after := observe(n2); after != before {
		t.Fatalf("channel changed: %+v, was %+v", after, before)
	}
	fails = false
	must(t, n2.Restore(f.state))
}

// TestGoldenDeviceState keeps a format-1 channel state holding a device
// record (0x0006): a later release must still decode and check it (go
// test -update rewrites it).
func TestGoldenDeviceState(t *testing.T) {
	path := filepath.Join("testdata", "golden", "channel-device-v1.state")
	if *update {
		f := newDeviceFixture(t, []byte("golden VSP state"))
		must(t, os.WriteFile(path, f.state, 0o644))
	}
	pc, recs := checkGolden(t, path)
	if string(pc.device) != "golden VSP state" {
		t.Fatalf("device bytes %q", pc.device)
	}
	for _, r := range recs {
		info, ok := savedstate.LookupKind(r.Kind)
		if !ok {
			t.Fatalf("kind %#x not registered", uint16(r.Kind))
		}
		if _, err := info.Describe(r.Body); err != nil {
			t.Fatalf("%s: %v", info.Name, err)
		}
	}
}
