package protocol

import (
	"errors"
	"fmt"

	"github.com/govmbus/govmbus/gpa"
)

// ErrGpadlTooLarge: the ranges do not fit in a range buffer whose length
// and count are u16s (at most 65528 bytes: 8190 pages in one range).
var ErrGpadlTooLarge = errors.New("protocol: GPADL range buffer longer than a u16 can describe")

// MaxRangeBufferLen is the longest range buffer a GpadlHeader can
// describe: the largest multiple of 8 a u16 holds.
const MaxRangeBufferLen = 0xFFF8

// NewGpadlMessages cuts ranges into the messages that create GPADL
// gpadlID on channel channelID: one *GpadlHeader, then as many *GpadlBody
// as the range buffer needs, in the order they must be sent.
//
// The header carries as many words as fit (27); each body carries up to 28
// and has MessageNumber 0, as Linux sends. Every range is validated first
// (gpa.Range.Validate); an empty list is an error wrapping ErrBadGpadl and
// a buffer longer than MaxRangeBufferLen one wrapping ErrGpadlTooLarge.
func NewGpadlMessages(channelID, gpadlID uint32, ranges []gpa.Range) ([]Message, error) {
	if len(ranges) == 0 {
		return nil, fmt.Errorf("%w: no ranges", ErrBadGpadl)
	}
	if len(ranges) > MaxRangeBufferLen/16 {
		return nil, fmt.Errorf("%w: %d ranges", ErrGpadlTooLarge, len(ranges))
	}
	total := 0
	for i, r := range ranges {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("protocol: GPADL range %d: %w", i, err)
		}
		total += r.EncodedLen()
		if total > MaxRangeBufferLen {
			return nil, fmt.Errorf("%w: %d ranges need more than %d bytes", ErrGpadlTooLarge, i+1, MaxRangeBufferLen)
		}
	}
	words := make([]uint64, 0, total/8)
	for _, r := range ranges {
		words = append(words, uint64(r.ByteCount)|uint64(r.ByteOffset)<<32)
		words = append(words, r.PFNs...)
	}
	n := min(len(words), GpadlHeaderMaxWords)
	rest := words[n:]
	msgs := make([]Message, 0, 1+(len(rest)+GpadlBodyMaxWords-1)/GpadlBodyMaxWords)
	msgs = append(msgs, &GpadlHeader{
		ChannelID:      channelID,
		GpadlID:        gpadlID,
		RangeBufferLen: uint16(total),
		RangeCount:     uint16(len(ranges)),
		Data:           words[:n:n],
	})
	for len(rest) > 0 {
		k := min(len(rest), GpadlBodyMaxWords)
		msgs = append(msgs, &GpadlBody{GpadlID: gpadlID, Data: rest[:k:k]})
		rest = rest[k:]
	}
	return msgs, nil
}
