package hvsock

import (
	"context"
	"time"

	"github.com/govmbus/govmbus/channel"
)

// DefaultLingerTimeout bounds how long the host waits, before it
// rescinds a connection it ends in order, for the guest to read what the
// host sent: Linux's close timeout.
const DefaultLingerTimeout = 8 * time.Second

// drain waits until the peer has read everything in ch's outgoing ring,
// the channel closed, or ctx ends. What follows (the host's rescind, the
// guest's close) closes the peer's channel, which stops reading its ring
// then: the last bytes and the FIN must be out of the ring by then.
//
// It asks the channel for room for the one packet that fits only an
// empty ring (WaitSendSpace: no polling; the guest's reads signal). A
// ring too large for such a packet is not waited for.
func drain(ctx context.Context, ch *channel.Channel) {
	size := ch.Stats().OutRingSize
	// An empty ring takes a packet of size-8 bytes (header 16, payload,
	// footer 8); any packet left in it takes at least 24 of those.
	n := size - 8 - 16 - 8
	if n <= 0 || 16+n > channel.MTU {
		return
	}
	ch.WaitSendSpace(ctx, n) //nolint:errcheck // a closed channel or ctx's end: nothing more to wait for
}
