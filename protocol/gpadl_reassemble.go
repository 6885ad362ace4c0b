package protocol

import (
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/gpa"
)

// ErrBadGpadl is the sentinel for a GPADL whose messages do not add up: the
// counts and lengths disagree, a body names another GPADL or overruns the
// declared length, or the finished range buffer is not a valid range list.
// Range-level failures also match gpa.ErrMalformed.
var ErrBadGpadl = errors.New("protocol: malformed GPADL")

// GpadlReassembler rebuilds a GPADL's range buffer on the host from a
// GpadlHeader and the GpadlBody messages that follow it, and validates the
// ranges once the buffer is complete.
//
// Every number in those messages comes from the guest. Memory is bounded by
// the u16 range buffer length (at most 64 KiB, grown only as data arrives);
// the number of bodies by the same length, since each carries at least one
// word and a body that would overrun the length is rejected. After any
// error the reassembler is dead and returns that error from every call.
// The host should also bound how many GPADLs may be in progress at once.
//
// A GpadlReassembler is not safe for concurrent use.
type GpadlReassembler struct {
	channelID, gpadlID uint32
	count              int    // ranges declared
	length             int    // bytes declared
	buf                []byte // range buffer received so far; nil once parsed
	received           int    // bytes received
	bodies             int
	ranges             []gpa.Range
	err                error
}

// NewGpadlReassembler starts reassembly from h. It rejects a header whose
// counts cannot describe a valid buffer: no ranges, a length that is not a
// multiple of 8 or is shorter than two words per range, no data at all, or
// more data than the length. If h alone completes the buffer, the ranges are validated now
// and Done reports true.
func NewGpadlReassembler(h *GpadlHeader) (*GpadlReassembler, error) {
	r := &GpadlReassembler{
		channelID: h.ChannelID,
		gpadlID:   h.GpadlID,
		count:     int(h.RangeCount),
		length:    int(h.RangeBufferLen),
	}
	switch {
	case r.count == 0:
		return nil, r.fail("no ranges")
	case r.length%8 != 0:
		return nil, r.fail(fmt.Sprintf("range buffer length %d is not a multiple of 8", r.length))
	case r.length < 16*r.count:
		return nil, r.fail(fmt.Sprintf("range buffer length %d cannot hold %d ranges of at least 16 bytes", r.length, r.count))
	case len(h.Data) > GpadlHeaderMaxWords:
		return nil, r.fail(fmt.Sprintf("header carries %d words, at most %d fit", len(h.Data), GpadlHeaderMaxWords))
	case 8*len(h.Data) > r.length:
		return nil, r.fail(fmt.Sprintf("header carries %d bytes of a %d-byte range buffer", 8*len(h.Data), r.length))
	case len(h.Data) == 0:
		return nil, r.fail("header carries no data")
	}
	r.buf = make([]byte, 0, min(r.length, 8*(GpadlHeaderMaxWords+GpadlBodyMaxWords)))
	r.add(h.Data)
	if err := r.finishIfComplete(); err != nil {
		return nil, err
	}
	return r, nil
}

// ChannelID is the channel the header named.
func (r *GpadlReassembler) ChannelID() uint32 { return r.channelID }

// GpadlID is the GPADL id the header named; every body must repeat it.
func (r *GpadlReassembler) GpadlID() uint32 { return r.gpadlID }

// Done reports whether the range buffer is complete and valid.
func (r *GpadlReassembler) Done() bool { return r.ranges != nil }

// Remaining is how many range-buffer bytes are still to come.
func (r *GpadlReassembler) Remaining() int { return r.length - r.received }

// AddBody appends the next body. It reports done once the buffer is
// complete and its ranges are valid. It rejects a body for another GPADL,
// a body after completion, and a body with more data than the declared
// length leaves room for.
func (r *GpadlReassembler) AddBody(b *GpadlBody) (done bool, err error) {
	if r.err != nil {
		return false, r.err
	}
	switch {
	case r.Done():
		return false, r.fail("body after the range buffer was complete")
	case b.GpadlID != r.gpadlID:
		return false, r.fail(fmt.Sprintf("body for GPADL %#x", b.GpadlID))
	case len(b.Data) == 0 || len(b.Data) > GpadlBodyMaxWords:
		return false, r.fail(fmt.Sprintf("body carries %d words", len(b.Data)))
	case 8*len(b.Data) > r.Remaining():
		return false, r.fail(fmt.Sprintf("body %d carries %d bytes, only %d remain", r.bodies+1, 8*len(b.Data), r.Remaining()))
	}
	r.bodies++
	r.add(b.Data)
	if err := r.finishIfComplete(); err != nil {
		return false, err
	}
	return r.Done(), nil
}

// Ranges returns the validated ranges once Done; before that, or after an
// error, it returns nil and an error.
func (r *GpadlReassembler) Ranges() ([]gpa.Range, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.Done() {
		return nil, fmt.Errorf("%w: GPADL %#x incomplete, %d bytes missing", ErrBadGpadl, r.gpadlID, r.Remaining())
	}
	return r.ranges, nil
}

// finishIfComplete parses the buffer once every byte has arrived: exactly
// count ranges that use every byte, each valid.
func (r *GpadlReassembler) finishIfComplete() error {
	if r.received < r.length {
		return nil
	}
	ranges, _, n, err := gpa.ParseRanges(r.buf, r.count, nil, nil)
	if err != nil {
		r.err = fmt.Errorf("%w: GPADL %#x: %w", ErrBadGpadl, r.gpadlID, err)
		return r.err
	}
	if n != r.length {
		return r.fail(fmt.Sprintf("%d ranges use %d of %d range buffer bytes", r.count, n, r.length))
	}
	r.ranges = ranges
	r.buf = nil // the ranges own copies of the PFNs
	return nil
}

func (r *GpadlReassembler) fail(why string) error {
	r.err = fmt.Errorf("%w: GPADL %#x: %s", ErrBadGpadl, r.gpadlID, why)
	return r.err
}

func (r *GpadlReassembler) add(words []uint64) {
	for _, w := range words {
		r.buf = le.AppendUint64(r.buf, w)
	}
	r.received += 8 * len(words)
}
