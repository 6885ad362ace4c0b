package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
	"github.com/govmbus/govmbus/protocol"
	"github.com/govmbus/govmbus/ring"
	"github.com/govmbus/govmbus/savedstate"
)

// TestStatusErrorKeepsItsCause: an error this package makes from a cause
// matches both the Status and the cause, and StatusOf still finds the
// Status.
func TestStatusErrorKeepsItsCause(t *testing.T) {
	cause := &ring.CorruptError{Control: true, Offset: ring.ReadIndexOffset, Rule: "read index is not a multiple of 8"}
	err := fail(StatusDeviceRemoved, "send: %w", cause)
	var ce *ring.CorruptError
	if !errors.Is(err, StatusDeviceRemoved) || !errors.Is(err, ring.ErrCorrupt) || !errors.As(err, &ce) || ce != cause {
		t.Fatalf("%v: Is(StatusDeviceRemoved) %v, Is(ring.ErrCorrupt) %v, As(*CorruptError) %v",
			err, errors.Is(err, StatusDeviceRemoved), errors.Is(err, ring.ErrCorrupt), ce)
	}
	if got := StatusOf(err); got != StatusDeviceRemoved {
		t.Errorf("StatusOf = %v", got)
	}
	if want := "channel: send: " + cause.Error() + ": " + StatusDeviceRemoved.Error(); err.Error() != want {
		t.Errorf("text %q, want %q", err.Error(), want)
	}
	if errors.Is(fail(StatusCancelled, "no cause %v", cause), ring.ErrCorrupt) {
		t.Error("a cause formatted as a plain value is wrapped")
	}
}

// TestSendOnCorruptRingKeepsTheCause: a peer that lies about its read
// index breaks the sender's ring; the send that finds it fails with an
// error matching both StatusDeviceRemoved and ring.ErrCorrupt, on either
// send path.
func TestSendOnCorruptRingKeepsTheCause(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, ignore, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.SetRingPages(2, 2))
	must(t, s.Enable())
	must(t, c.Enable())
	waitState(t, c, StateActive) // the server is not started: nobody reads
	payload := make([]byte, 1000)
	for range RingCapacity(2, len(payload)) {
		must(t, c.TrySend(payload))
	}
	// The host's reader owns this index: an unaligned one is a lie the
	// client's writer finds when the space it knows of runs out.
	c.mu.Lock()
	out := c.gch.Out
	c.mu.Unlock()
	binary.LittleEndian.PutUint32(out[ring.ReadIndexOffset:], 4)

	check := func(path string, err error) {
		t.Helper()
		if !errors.Is(err, ring.ErrCorrupt) || !errors.Is(err, StatusDeviceRemoved) {
			t.Errorf("%s: %v: Is(ring.ErrCorrupt) %v, Is(StatusDeviceRemoved) %v",
				path, err, errors.Is(err, ring.ErrCorrupt), errors.Is(err, StatusDeviceRemoved))
		}
	}
	check("TrySend", c.TrySend(payload))
	p, err := c.AllocatePacket()
	must(t, err)
	check("OutPacket.Send", p.Send(payload, 0))
	p.Free()
	must(t, s.Start())
}

// TestIncomingStoppedKeepsTheCause: a ring the guest corrupts stops the
// server's incoming queue; Stats.IncomingErr matches both the channel's
// status and ring.ErrCorrupt, and IncomingStopped is the ring's own words.
func TestIncomingStoppedKeepsTheCause(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s, c := r.pair(t, ignore, ignore, StateCallbacks{}, StateCallbacks{})
	if err := s.Stats().IncomingErr; err != nil {
		t.Fatalf("stopped before anything happened: %v", err)
	}
	c.mu.Lock()
	out, toServer := c.gch.Out, c.ep.out
	c.mu.Unlock()
	binary.LittleEndian.PutUint32(out[ring.WriteIndexOffset:], uint32(len(out)))
	must(t, toServer.Signal())
	eventually(t, "the incoming queue to stop", func() bool { return s.Stats().IncomingErr != nil })
	st := s.Stats()
	var ce *ring.CorruptError
	if !errors.Is(st.IncomingErr, StatusDeviceRemoved) || !errors.As(st.IncomingErr, &ce) {
		t.Fatalf("%v: Is(StatusDeviceRemoved) %v, As(*ring.CorruptError) %v",
			st.IncomingErr, errors.Is(st.IncomingErr, StatusDeviceRemoved), ce)
	}
	if st.IncomingStopped != ce.Error() {
		t.Errorf("IncomingStopped %q, want the ring's %q", st.IncomingStopped, ce.Error())
	}
}

// TestRestoreCorruptStateKeepsTheCause: a saved state whose open
// parameters are not a message fails to restore with an error matching
// savedstate.ErrInvalid, StatusInvalidParameter and the protocol's reason.
func TestRestoreCorruptStateKeepsTheCause(t *testing.T) {
	leakcheck.Check(t)
	f := newFixture(t, 4)
	defer f.release()
	b, rs, err := savedstate.Parse(f.state, savedstate.Limits{})
	must(t, err)
	// The info record: channel id, connection id, then the OpenChannel
	// message as a length-prefixed field; its first word is the type.
	info := bytes.Clone(rs[0].Body)
	binary.LittleEndian.PutUint32(info[12:], 0xFFFF)
	rs[0].Body = info
	sv, err := savedstate.NewSaver(b.Scope, b.Identity, rs)
	must(t, err)

	n := configure(t, f.g, newVSP(), echo)
	err = n.Restore(sv.Bytes())
	for _, want := range []error{savedstate.ErrInvalid, StatusInvalidParameter, protocol.ErrUnknownType} {
		if !errors.Is(err, want) {
			t.Errorf("%v does not match %v", err, want)
		}
	}
	must(t, n.Restore(f.state))
}
