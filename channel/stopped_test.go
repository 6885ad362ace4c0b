package channel

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/govmbus/govmbus/internal/leakcheck"
)

// TestIncomingStoppedSaysWhy: each way the incoming queue stops for good
// leaves its reason in Stats, and opening again clears it.
func TestIncomingStoppedSaysWhy(t *testing.T) {
	leakcheck.Check(t)
	t.Run("packet past the limits", func(t *testing.T) {
		r := newRig(t)
		s := r.newServer(t, ignore, StateCallbacks{})
		must(t, s.SetMaxPacketSize(64))
		c := r.newClient(t, ignore, StateCallbacks{})
		must(t, s.Enable())
		must(t, s.Start())
		must(t, c.Enable())
		waitState(t, c, StateActive)
		if got := s.Stats().IncomingStopped; got != "" {
			t.Fatalf("stopped before anything happened: %q", got)
		}
		sendAsync(t, c, strings.Repeat("x", 200))
		eventually(t, "the reason", func() bool { return strings.Contains(s.Stats().IncomingStopped, "200 bytes") })
	})
	t.Run("driver failed a packet", func(t *testing.T) {
		r := newRig(t)
		fail := func(_ *Channel, p *Packet, _ []byte, _ PacketFlags) { p.Fail() }
		s, c := r.pair(t, fail, ignore, StateCallbacks{}, StateCallbacks{})
		sendAsync(t, c, "bad.....")
		eventually(t, "the reason", func() bool { return strings.Contains(s.Stats().IncomingStopped, "Fail") })
		// The guest closes and opens the channel again: a fresh queue.
		must(t, c.Disable())
		must(t, c.Enable())
		waitState(t, c, StateActive)
		eventually(t, "the reason cleared", func() bool { return s.Stats().IncomingStopped == "" })
	})
	t.Run("corrupt ring", func(t *testing.T) {
		r := newRig(t)
		s, c := r.pair(t, ignore, ignore, StateCallbacks{}, StateCallbacks{})
		// The guest writes a write index past its ring's end into the
		// control page of the ring the server reads, and signals.
		c.mu.Lock()
		out, toServer := c.gch.Out, c.ep.out
		c.mu.Unlock()
		binary.LittleEndian.PutUint32(out[0:], uint32(len(out)))
		must(t, toServer.Signal())
		eventually(t, "the reason", func() bool { return strings.Contains(s.Stats().IncomingStopped, "corrupt") })
		t.Logf("reason: %s", s.Stats().IncomingStopped)
	})
}
