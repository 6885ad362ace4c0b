package channel

import (
	"testing"

	"github.com/govmbus/govmbus/ring"
)

// TestStatsCounts checks the counters of both ends for a known pattern:
// synchronous round trips, then packets held in the ring by a paused
// server, then their release.
func TestStatsCounts(t *testing.T) {
	r := newRig(t)
	s, c := r.pair(t, echo, ignore, StateCallbacks{}, StateCallbacks{})

	// 100 bytes travel as 104: the ring pads payloads to 8.
	const n, size, padded = 100, 100, 104
	req, resp := make([]byte, size), make([]byte, padded)
	for range n {
		if _, err := c.SendSynchronousRequest(req, nil, 0, resp, NoTimeout); err != nil {
			t.Fatal(err)
		}
	}
	// The server counts its last batch when the batch ends, after the
	// completion that let the client go on.
	eventually(t, "server counters", func() bool { return s.Stats().PacketsIn == n })
	// So does the client: the last completion ends its synchronous
	// request inside the client's batch, before the batch commits the
	// ring and counts its packets (and it holds the client's sends until
	// then).
	eventually(t, "client counters", func() bool {
		st := c.Stats()
		return st.PacketsIn == n && st.InRingUsed == 0
	})
	cs, ss := c.Stats(), s.Stats()
	if cs.PacketsOut != n || cs.BytesOut != n*padded || cs.PacketsIn != n || cs.BytesIn != n*padded {
		t.Errorf("client: %+v, want %d packets of %d bytes each way", cs, n, padded)
	}
	if ss.PacketsIn != n || ss.BytesIn != n*padded || ss.PacketsOut != n || ss.BytesOut != n*padded {
		t.Errorf("server: %+v, want %d packets of %d bytes each way", ss, n, padded)
	}
	if cs.SignalsSent == 0 || cs.SignalsSent+cs.SignalsSuppressed < n {
		t.Errorf("client signals: %d sent, %d suppressed; want some sent and one decision per request at least", cs.SignalsSent, cs.SignalsSuppressed)
	}
	if ss.SignalsSent == 0 {
		t.Errorf("server sent no signal: %+v", ss)
	}
	if cs.CompletionsPending != 0 || cs.InRingUsed != 0 || cs.OutRingUsed != 0 || ss.InRingUsed != 0 {
		t.Errorf("idle channel: client %+v, server %+v", cs, ss)
	}
	if cs.OutRingSize == 0 || cs.OutRingSize != ss.InRingSize || cs.InRingSize != ss.OutRingSize {
		t.Errorf("ring sizes: client %+v, server %+v", cs, ss)
	}

	// A paused server leaves what the client sends in the ring.
	must(t, s.Pause())
	const k, small = 5, 64
	msg := make([]byte, small)
	for range k {
		p, err := c.AllocatePacket()
		must(t, err)
		must(t, p.Send(msg, SendWaitForCompletion))
	}
	cs, ss = c.Stats(), s.Stats()
	wire := k * ring.PacketLen(0, small) // each packet and its footer
	if cs.CompletionsPending != k || cs.OutRingUsed != wire || ss.InRingUsed != wire {
		t.Errorf("paused server: client pending %d, out ring %d; server in ring %d; want %d, %d, %d",
			cs.CompletionsPending, cs.OutRingUsed, ss.InRingUsed, k, wire, wire)
	}
	if cs.PacketsOut != n+k || ss.PacketsIn != n {
		t.Errorf("paused server: client out %d, server in %d; want %d, %d", cs.PacketsOut, ss.PacketsIn, n+k, n)
	}

	must(t, s.Start())
	eventually(t, "completions", func() bool {
		cs := c.Stats()
		return cs.CompletionsPending == 0 && cs.PacketsIn == n+k
	})
	eventually(t, "server counters", func() bool { return s.Stats().PacketsIn == n+k })
	cs, ss = c.Stats(), s.Stats()
	if cs.BytesOut != n*padded+k*small || ss.BytesIn != cs.BytesOut || ss.PacketsOut != n+k || cs.OutRingUsed != 0 {
		t.Errorf("after release: client %+v, server %+v", cs, ss)
	}
}

// TestStatsClosed: a channel that never opened has zero counters and
// rings.
func TestStatsClosed(t *testing.T) {
	if s := NewServer().Stats(); s != (Stats{}) {
		t.Errorf("new channel: %+v", s)
	}
}
