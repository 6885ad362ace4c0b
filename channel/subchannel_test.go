package channel

import (
	"bytes"
	"errors"
	"github.com/govmbus/govmbus/internal/leakcheck"
	"testing"
	"time"
)

func TestSubchannels(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, echo, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})

	var ssrec, csrec recorder
	ss := r.newServer(t, echo, ssrec.callbacks())
	must(t, ss.SetPrimary(s, 1))
	cs := r.newClient(t, ignore, csrec.callbacks())
	must(t, cs.SetPrimary(c, 1))
	if err := ss.SetPrimary(ss, 1); !errors.Is(err, StatusInvalidParameter) {
		t.Fatalf("own primary: %v", err)
	}

	// Not while the primary is not open.
	must(t, s.Enable())
	if err := ss.Enable(); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("server subchannel before the primary opened: %v", err)
	}
	if err := cs.Enable(); !errors.Is(err, StatusInvalidDeviceState) {
		t.Fatalf("client subchannel before the primary opened: %v", err)
	}
	must(t, s.Start())
	must(t, c.Enable())
	waitState(t, c, StateActive)
	waitState(t, s, StateActive)

	must(t, ss.Enable())
	must(t, ss.Start())
	must(t, cs.Enable())
	waitState(t, cs, StateActive)
	waitState(t, ss, StateActive)
	if cs.ChannelID() == c.ChannelID() || cs.ChannelID() == 0 {
		t.Fatalf("subchannel id %d, primary %d", cs.ChannelID(), c.ChannelID())
	}
	resp := make([]byte, 8)
	n, err := cs.SendSynchronousRequest([]byte("on sub.."), nil, 0, resp, time.Second)
	must(t, err)
	if !bytes.Equal(resp[:n], []byte("on sub..")) {
		t.Fatalf("resp %q", resp[:n])
	}

	// Closed with the primary, on both sides.
	must(t, c.Disable())
	waitState(t, cs, StateClosed)
	waitState(t, ss, StateClosed)
	if got := csrec.String(); got != "Opened,Started,PostStarted,Suspend,Closed" {
		t.Fatalf("client subchannel callbacks %s", got)
	}
	if got := ssrec.String(); got != "Opened,Started,PostStarted,Suspend,Closed" {
		t.Fatalf("server subchannel callbacks %s", got)
	}
	must(t, cs.Disable())
	must(t, ss.Disable())
	must(t, s.Disable())
}

// TestSubchannelWaitingFailsSendsWhenPrimaryCloses: a client subchannel
// still waiting for its offer when its primary closes moves to Closed and
// fails the request queued for its open; it waited until Disable.
func TestSubchannelWaitingFailsSendsWhenPrimaryCloses(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	_, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
	cs := r.newClient(t, ignore, StateCallbacks{})
	must(t, cs.SetPrimary(c, 1))
	must(t, cs.Enable()) // no server subchannel: it waits for the offer
	res := make(chan error, 1)
	go func() {
		_, err := cs.SendSynchronousRequest([]byte("queued.."), nil, 0, make([]byte, 8), NoTimeout)
		res <- err
	}()
	eventually(t, "the request queued", func() bool { return cs.Stats().Queued > 0 })
	must(t, c.Disable())
	select {
	case err := <-res:
		if StatusOf(err) != StatusDeviceRemoved {
			t.Fatalf("request queued on the subchannel: %v, want StatusDeviceRemoved", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the request queued on the subchannel still waits 5 s after its primary closed; subchannel %v", cs.State())
	}
}
