package ring

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// ring is what both endpoints share: the control fields as atomics and the
// data area. It holds no index of its own.
type ring struct {
	data []byte
	size uint32 // len(data), a multiple of 8

	writeIndex    *atomic.Uint32
	readIndex     *atomic.Uint32
	interruptMask *atomic.Uint32
	pendingSend   *atomic.Uint32
	featureBits   *atomic.Uint32
}

// errRegion is returned for a region that cannot hold a ring at all. That
// is the caller's set-up, not the peer's doing, so it is not ErrCorrupt.
var errRegion = errors.New("ring: bad region")

func newRing(region []byte) (ring, error) {
	if len(region) < ControlSize+4096 {
		return ring{}, fmt.Errorf("%w: %d bytes, need a %d-byte control page and at least 4096 data bytes",
			errRegion, len(region), ControlSize)
	}
	data := region[ControlSize:]
	if len(data)%4096 != 0 || uint64(len(data)) > math.MaxUint32&^4095 {
		return ring{}, fmt.Errorf("%w: data area of %d bytes is not a multiple of 4096 that fits in 32 bits",
			errRegion, len(data))
	}
	if !aligned8(region) {
		return ring{}, fmt.Errorf("%w: region is not 8-byte aligned", errRegion)
	}
	ctl := region[:ControlSize]
	return ring{
		data:          data,
		size:          uint32(len(data)),
		writeIndex:    word(ctl, WriteIndexOffset),
		readIndex:     word(ctl, ReadIndexOffset),
		interruptMask: word(ctl, InterruptMaskOffset),
		pendingSend:   word(ctl, PendingSendSizeOffset),
		featureBits:   word(ctl, FeatureBitsOffset),
	}, nil
}

// Format prepares region as an empty ring: the control page is zeroed and,
// if pendingSend is true, feature bit 0 (pending send size in use) is set,
// as Linux does for both rings of a channel. The data area is left alone.
// Format is for the side that sets up the ring, before any endpoint opens.
func Format(region []byte, pendingSend bool) error {
	r, err := newRing(region)
	if err != nil {
		return err
	}
	clear(region[:ControlSize])
	if pendingSend {
		r.featureBits.Store(FeaturePendingSendSize)
	}
	return nil
}

// checkIndex validates an index loaded from the control page.
func (r *ring) checkIndex(idx uint32, field uint32, name string) error {
	if idx >= r.size {
		return corruptControl(field, "%s %#x is not below the ring size %#x", name, idx, r.size)
	}
	if idx%8 != 0 {
		return corruptControl(field, "%s %#x is not a multiple of 8", name, idx)
	}
	return nil
}

// used is the number of bytes between out and in, going forward.
func (r *ring) used(in, out uint32) uint32 {
	if in >= out {
		return in - out
	}
	return r.size - out + in
}

// put copies src into the data area at off, wrapping at the end, and
// returns the index after it. off < size and len(src) <= size.
func (r *ring) put(off uint32, src []byte) uint32 {
	n := copy(r.data[off:], src)
	if n < len(src) {
		return uint32(copy(r.data, src[n:]))
	}
	off += uint32(n)
	if off == r.size {
		off = 0
	}
	return off
}

// get copies len(dst) bytes from the data area at off, wrapping at the end.
func (r *ring) get(off uint32, dst []byte) {
	n := copy(dst, r.data[off:])
	if n < len(dst) {
		copy(dst[n:], r.data)
	}
}

// advance moves an index forward by n bytes, wrapping at the end.
// n <= size. The sum is taken in 64 bits: a ring may be nearly 4 GiB.
func (r *ring) advance(off, n uint32) uint32 {
	o := uint64(off) + uint64(n)
	if o >= uint64(r.size) {
		o -= uint64(r.size)
	}
	return uint32(o)
}

// Size is the ring's data size in bytes.
func (r *ring) Size() int { return int(r.size) }
