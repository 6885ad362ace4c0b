package channel

import (
	"bytes"
	"errors"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestSavePacketSecondCallAfterAnyFailure: KMCL calls the save-packet
// callback a second time after any failure of the sizing call, not only
// after STATUS_BUFFER_TOO_SMALL.
func TestSavePacketSecondCallAfterAnyFailure(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	want := []byte("vsp-own!")
	calls := 0
	s := r.newServer(t, echo, StateCallbacks{})
	must(t, s.SetSavePacketCallbacks(func(_ *OutPacket, buf []byte) (int, error) {
		calls++
		if len(buf) < len(want) {
			return len(want), errors.New("sizing: not a status at all")
		}
		return copy(buf, want), nil
	}, nil))
	c := pausedInFlight(t, r, s)
	var buf bytes.Buffer
	must(t, s.Save(&buf))
	if calls != 2 {
		t.Fatalf("save-packet callback called %d times, want 2", calls)
	}
	var got []byte
	for _, rec := range records(t, buf.Bytes()) {
		if rec.Kind == KindChannelPacket {
			pr, err := decodePacket(rec.Body)
			must(t, err)
			got = pr.VSP
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("saved VSP bytes %q, want %q", got, want)
	}
	must(t, s.Start())
	must(t, c.Start())
}

// pausedInFlight enables server s with a client of r paused before it
// opens, sends one packet that waits in the ring for its completion, and
// pauses s, ready to be saved: the client, to Start after.
func pausedInFlight(t *testing.T, r *rig, s *Channel) *Channel {
	t.Helper()
	c := r.newClient(t, echo, StateCallbacks{})
	must(t, s.Enable())
	must(t, s.Start())
	must(t, c.Pause()) // before it opens: the packet stays in the ring
	must(t, c.Enable())
	waitState(t, s, StateActive)
	p, err := s.AllocatePacket()
	must(t, err)
	must(t, p.Send([]byte("in flight"), SendWaitForCompletion))
	must(t, s.Pause())
	return c
}

// TestRestoreRefusals: a state with packets needs a restore-packet
// callback (else the packets' completions would reach no one), and a
// restored channel takes no second state.
func TestRestoreRefusals(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 4)
	defer f.release()
	bare := NewServer()
	must(t, bare.SetGuest(f.g))
	must(t, bare.SetInterface(testType, testInst))
	must(t, bare.SetProcessPacketCallbacks(echo, nil))
	t.Cleanup(func() { bare.Cleanup() })
	if err := bare.Restore(f.state); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("restore of packets without a restore-packet callback: %v", err)
	}
	n := configure(t, f.g, newVSP(), echo)
	must(t, n.Restore(f.state))
	if err := n.Restore(f.state); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("second restore into a restored channel: %v", err)
	}
	must(t, n.Enable())
}
