package channel

import (
	"testing"
	"time"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestClientCleanupSilentHost: a host that never finishes closing the
// channel (here its device holds a packet for ever, so the host never
// answers the ring GPADL's teardown) holds a client's Cleanup for at most
// the teardown wait, not for ever.
func TestClientCleanupSilentHost(t *testing.T) {
	leakcheck.Check(t)
	clientTeardownWait.Store(int64(200 * time.Millisecond))
	t.Cleanup(func() { clientTeardownWait.Store(int64(DefaultClientTeardownWait)) })
	r := newRig(t)
	held := make(chan *Packet, 1)
	hold := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { held <- p }
	s, c := r.pair(t, hold, ignore, StateCallbacks{}, StateCallbacks{})
	sendBytes(t, c, 1)
	var p *Packet
	select {
	case p = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not receive the packet")
	}
	done := make(chan error, 1)
	go func() { done <- c.Cleanup() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Complete(nil)
		<-done
		t.Fatal("the client's Cleanup still waits for the host after 10 s")
	}
	p.Complete(nil) // lets the server close, so that nothing is left
	must(t, s.Cleanup())
}
