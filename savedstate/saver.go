package savedstate

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Progress is the outcome of one Saver.Continue call, in KMCL's terms.
type Progress int

const (
	// Done: the rest of the state was written (STATUS_SUCCESS).
	Done Progress = iota
	// TooSmall: the buffer cannot hold the next record; nothing was
	// written (STATUS_BUFFER_TOO_SMALL).
	TooSmall
	// Overflow: some whole records were written and more remain
	// (STATUS_BUFFER_OVERFLOW).
	Overflow
)

func (p Progress) String() string {
	switch p {
	case Done:
		return "done"
	case TooSmall:
		return "buffer too small"
	case Overflow:
		return "buffer overflow"
	}
	return fmt.Sprintf("Progress(%d)", int(p))
}

// MaxIdentity bounds the identity bytes of a Begin record.
const MaxIdentity = 1024

// Saver hands out a saved state in chunks. All records are encoded when the
// Saver is made, so the byte stream is fixed from then on and any sequence
// of buffer sizes yields the same concatenated bytes.
//
// A Saver is not safe for concurrent use.
type Saver struct {
	stream []byte
	ends   []int // end offset of each record in stream
	next   int   // index of the next record to hand out
	pos    int   // stream offset of the next record
}

// NewSaver frames records as one save of the given scope and identity:
// Begin, the records in order, End. Each save gets a random save id, so
// chunks of two saves cannot be mixed on restore.
func NewSaver(scope Scope, identity []byte, records []Record) (*Saver, error) {
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	return NewSaverID(scope, identity, records, binary.LittleEndian.Uint64(idb[:]))
}

// NewSaverID is NewSaver with the save id given, for golden files and
// reproducible tests.
func NewSaverID(scope Scope, identity []byte, records []Record, saveID uint64) (*Saver, error) {
	if len(identity) > MaxIdentity {
		return nil, fmt.Errorf("savedstate: identity of %d bytes exceeds %d", len(identity), MaxIdentity)
	}
	for i, r := range records {
		if len(r.Body) > MaxBody {
			return nil, fmt.Errorf("savedstate: record %d body of %d bytes exceeds %d", i+1, len(r.Body), MaxBody)
		}
		if r.Kind >= KindBegin {
			return nil, fmt.Errorf("savedstate: record %d uses reserved kind %#x", i+1, uint16(r.Kind))
		}
		if r.Flags&^FlagCritical != 0 {
			return nil, fmt.Errorf("savedstate: record %d has unknown flags %#x", i+1, r.Flags)
		}
	}
	count := uint32(len(records) + 2)

	size := encodedLen(8+len(identity)) + encodedLen(16)
	for _, r := range records {
		size += encodedLen(len(r.Body))
	}
	s := &Saver{stream: make([]byte, 0, size), ends: make([]int, 0, count)}

	begin := make([]byte, 8, 8+len(identity))
	binary.LittleEndian.PutUint16(begin[0:], uint16(scope))
	binary.LittleEndian.PutUint32(begin[4:], count)
	begin = append(begin, identity...)
	s.stream = appendRecord(s.stream, KindBegin, FlagCritical, 0, saveID, begin)
	s.ends = append(s.ends, len(s.stream))
	for i, r := range records {
		s.stream = appendRecord(s.stream, r.Kind, r.Flags, uint32(i+1), saveID, r.Body)
		s.ends = append(s.ends, len(s.stream))
	}
	var end [16]byte
	binary.LittleEndian.PutUint32(end[0:], count)
	binary.LittleEndian.PutUint32(end[8:], crc32.Checksum(s.stream, castagnoli))
	s.stream = appendRecord(s.stream, KindEnd, FlagCritical, count-1, saveID, end[:])
	s.ends = append(s.ends, len(s.stream))
	return s, nil
}

// Continue writes as many whole records as fit into buf, continuing where
// the previous call stopped, and reports the bytes written, the bytes the
// next call needs to make progress, and the outcome:
//
//   - Done: the last record was written by this call; required is 0.
//   - Overflow: filled > 0 bytes of whole records, more remain; required
//     is the size of the next record.
//   - TooSmall: the next record does not fit; nothing was written;
//     required is its size.
//
// Once Done, further calls write nothing and report Done.
func (s *Saver) Continue(buf []byte) (filled, required int, p Progress) {
	if s.next == len(s.ends) {
		return 0, 0, Done
	}
	end := s.next
	for end < len(s.ends) && s.ends[end]-s.pos <= len(buf) {
		end++
	}
	if end == s.next {
		return 0, s.ends[s.next] - s.recordStart(s.next), TooSmall
	}
	stop := s.ends[end-1]
	filled = copy(buf, s.stream[s.pos:stop])
	s.pos, s.next = stop, end
	if s.next == len(s.ends) {
		return filled, 0, Done
	}
	return filled, s.ends[s.next] - s.pos, Overflow
}

func (s *Saver) recordStart(i int) int {
	if i == 0 {
		return 0
	}
	return s.ends[i-1]
}

// Len is the size of the whole saved state.
func (s *Saver) Len() int { return len(s.stream) }

// Bytes returns the whole saved state at once, for callers that do not need
// chunks (a file, a test). It does not move the Continue position.
func (s *Saver) Bytes() []byte { return s.stream }
