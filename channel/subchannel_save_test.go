package channel

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/govmbus/govmbus/host"
	"github.com/govmbus/govmbus/internal/leakcheck"
)

// restoreAll feeds chunks to c's RestoreFromBuffer as one buffer each.
func restoreAll(c *Channel, parts [][]byte) error {
	for i, p := range parts {
		err := c.RestoreFromBuffer(p)
		if i < len(parts)-1 && !errors.Is(err, StatusMoreProcessingRequired) {
			return err
		}
		if i == len(parts)-1 {
			return err
		}
	}
	return nil
}

// TestServicingSubchannel services a host whose server has a primary
// channel and a subchannel open: both are saved, the subchannel's state
// is refused by a channel with another subchannel index, and after the
// restore the guest's requests on both, including one sent while the
// host was paused, are answered.
func TestServicingSubchannel(t *testing.T) {
	leakcheck.Check(t)
	s := newSvc(t)
	v := newVSP()
	prim := configure(t, s.Guest, v, echo)
	sub := configure(t, s.Guest, v, echo)
	must(t, sub.SetPrimary(prim, 1))
	must(t, prim.Enable())
	must(t, prim.Start())

	cp := NewClient()
	must(t, cp.SetClient(s.Client))
	must(t, cp.SetInterface(testType, testInst))
	must(t, cp.SetProcessPacketCallbacks(ignore, nil))
	t.Cleanup(func() { cp.Cleanup() })
	cs := NewClient()
	must(t, cs.SetClient(s.Client))
	must(t, cs.SetInterface(testType, testInst))
	must(t, cs.SetPrimary(cp, 1))
	must(t, cs.SetProcessPacketCallbacks(ignore, nil))
	t.Cleanup(func() { cs.Cleanup() })
	must(t, cp.Enable())
	waitState(t, cp, StateActive)
	must(t, sub.Enable())
	must(t, sub.Start())
	must(t, cs.Enable())
	waitState(t, cs, StateActive)

	ask := func(c *Channel, msg string) {
		t.Helper()
		resp := make([]byte, len(msg))
		n, err := c.SendSynchronousRequest([]byte(msg), nil, 0, resp, 5*time.Second)
		if err != nil || !bytes.Equal(resp[:n], []byte(msg)) {
			t.Fatalf("request %q: %q, %v", msg, resp[:n], err)
		}
	}
	ask(cp, "primary1")
	ask(cs, "subchan1")

	// Pause both, then a guest request on the subchannel waits in its
	// ring over the servicing.
	must(t, sub.Pause())
	must(t, prim.Pause())
	pending := make(chan error, 1)
	go func() {
		resp := make([]byte, 8)
		n, err := cs.SendSynchronousRequest([]byte("waiting."), nil, 0, resp, 10*time.Second)
		if err == nil && !bytes.Equal(resp[:n], []byte("waiting.")) {
			err = errors.New("wrong answer")
		}
		pending <- err
	}()
	saved := s.Save(t)
	primParts := chunks(t, prim, []int{4096})
	subParts := chunks(t, sub, []int{4096})
	s.Stop()
	must(t, sub.Cleanup())
	must(t, prim.Cleanup())
	s.Restore(t, host.Config{}, saved)

	np := configure(t, s.Guest, v, echo)
	must(t, restoreAll(np, primParts))
	// The subchannel's state names subchannel 1: a channel set up as
	// subchannel 2 of the primary refuses it, unchanged.
	wrong := configure(t, s.Guest, v, echo)
	must(t, wrong.SetPrimary(np, 2))
	if err := restoreAll(wrong, subParts); err == nil || errors.Is(err, StatusMoreProcessingRequired) {
		t.Fatalf("subchannel 1's state restored into subchannel 2: %v", err)
	}
	must(t, wrong.Cleanup())
	ns := configure(t, s.Guest, v, echo)
	must(t, ns.SetPrimary(np, 1))
	must(t, restoreAll(ns, subParts))
	must(t, np.Enable())
	must(t, np.Start())
	must(t, ns.Enable())
	must(t, ns.Start())
	s.Host.Resume()

	if err := <-pending; err != nil {
		t.Fatalf("request sent during the servicing: %v", err)
	}
	ask(cp, "primary2")
	ask(cs, "subchan2")
	if cs.ChannelID() != ns.ChannelID() || cp.ChannelID() != np.ChannelID() {
		t.Fatalf("ids: client %d/%d, restored server %d/%d", cp.ChannelID(), cs.ChannelID(), np.ChannelID(), ns.ChannelID())
	}
}
