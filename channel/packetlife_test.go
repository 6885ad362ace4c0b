package channel

import (
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

func (c *Channel) livePackets() int {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.outLive
}

// TestDefaultCompletionFreesPacket: KMCL's default completion routine
// releases the packet (VmbPacketAllocate), so a driver that allocates,
// sends and forgets leaks nothing, with or without a completion asked of
// the peer.
func TestDefaultCompletionFreesPacket(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	_, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})
	for i := range 20 {
		p, err := c.AllocatePacket()
		must(t, err)
		flags := SendFlags(0)
		if i%2 == 1 {
			flags = SendWaitForCompletion
		}
		must(t, p.Send([]byte("forget me"), flags))
	}
	eventually(t, "every packet freed", func() bool { return c.livePackets() == 0 })
	// A packet with a routine of its own stays the driver's.
	p, err := c.AllocatePacket()
	must(t, err)
	done := make(chan Status, 1)
	p.SetCompletion(func(_ *OutPacket, st Status, _ []byte) { done <- st })
	must(t, p.Send([]byte("keep me."), SendWaitForCompletion))
	<-done
	if n := c.livePackets(); n != 1 {
		t.Fatalf("%d live packets, want the one with its own routine", n)
	}
	p.Free()
}

// TestSendBeforeOpenQueues: KMCL's EvtVmbChannelOpened page lets packets
// be queued before the channel opens (they are sent once it is open), so
// a send on an enabled channel that is not open yet queues, and Disable
// fails what never went out.
func TestSendBeforeOpenQueues(t *testing.T) {
	leakcheck.Check(t)
	r := newRig(t)
	s := r.newServer(t, echo, StateCallbacks{})
	c := r.newClient(t, ignore, StateCallbacks{})
	must(t, c.Enable()) // waits for an offer that does not come yet
	got := make(chan string, 1)
	p, err := c.AllocatePacket()
	must(t, err)
	p.SetCompletion(func(_ *OutPacket, st Status, payload []byte) {
		got <- st.Error() + ":" + string(payload)
	})
	must(t, p.Send([]byte("early..."), SendWaitForCompletion))
	must(t, s.Enable())
	must(t, s.Start())
	if g := <-got; g != StatusSuccess.Error()+":early..." {
		t.Fatalf("queued before the open: %s", g)
	}
	p.Free()

	// Queued, and the channel never opens: Disable fails the packet.
	must(t, c.Disable())
	must(t, s.Disable())
	must(t, c.Enable())
	q, err := c.AllocatePacket()
	must(t, err)
	q.SetCompletion(func(_ *OutPacket, st Status, _ []byte) { got <- st.Error() })
	must(t, q.Send([]byte("never..."), 0))
	must(t, c.Disable())
	if g := <-got; g != StatusDeviceRemoved.Error() {
		t.Fatalf("queued on a channel disabled before it opened: %s", g)
	}
	q.Free()
}
