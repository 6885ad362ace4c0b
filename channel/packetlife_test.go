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
