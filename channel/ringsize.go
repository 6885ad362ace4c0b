package channel

import (
	"math"

	"github.com/govmbus/govmbus/gpa"
	"github.com/govmbus/govmbus/ring"
)

// RingCapacity is how many in-band packets of payloadLen bytes one ring
// of pages pages (control page included, as SetRingPages counts them)
// holds at once. A sender that keeps at most this many in flight never
// finds the ring full, so none of its packets waits in the channel's send
// queue. It is 0 when not even one fits.
func RingCapacity(pages, payloadLen int) int {
	if pages <= 0 || pages > math.MaxInt/gpa.PageSize {
		return 0
	}
	return ring.PacketsFit(pages*gpa.PageSize-ring.ControlSize, payloadLen)
}
