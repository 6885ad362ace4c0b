package savedstate

import (
	"encoding/binary"
	"hash/crc32"
)

// Limits bound what a Restorer accepts, since the state is untrusted.
type Limits struct {
	MaxRecords int // records including Begin and End; 0 means 1<<20
	MaxBytes   int // the whole state; 0 means 256 MiB
}

// Begin is what a state's Begin record says.
type Begin struct {
	// Version is the state's format version. Every record's header
	// carries it, and a state of a version this release does not read is
	// refused before its Begin is known.
	Version  uint16
	Scope    Scope
	Records  int // including Begin and End
	Identity []byte
	SaveID   uint64
}

// Restorer takes a saved state as chunks of whole records, in order, and
// checks each as it arrives. It keeps copies of the records: the caller
// acts on Records only once Feed reported the state complete, so a state
// that fails anywhere changes nothing.
//
// A Restorer that reported an error stays failed. It is not safe for
// concurrent use.
type Restorer struct {
	limits  Limits
	begin   Begin
	records []Record
	seq     uint32
	bytes   int
	digest  uint32 // CRC-32C of every record before End
	done    bool
	err     error
}

// NewRestorer starts a restore.
func NewRestorer(l Limits) *Restorer {
	if l.MaxRecords <= 0 {
		l.MaxRecords = 1 << 20
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 256 << 20
	}
	return &Restorer{limits: l}
}

// Feed checks one chunk: one or more whole records, continuing the state.
// It returns done = true once the End record has been checked, and then
// Records and Begin describe the whole state. A chunk after End, a chunk
// that ends inside a record, and every broken rule are errors.
func (r *Restorer) Feed(chunk []byte) (done bool, err error) {
	if r.err != nil {
		return false, r.err
	}
	if r.done {
		return true, r.fail(invalid(0, -1, "data after the End record"))
	}
	if len(chunk) == 0 {
		return false, r.fail(invalid(0, -1, "empty chunk"))
	}
	for off := 0; off < len(chunk); {
		if r.done {
			return true, r.fail(invalid(off, -1, "data after the End record"))
		}
		h, body, n, err := parseRecord(chunk[off:], off)
		if err != nil {
			return false, r.fail(err)
		}
		if err := r.accept(h, body, off); err != nil {
			return false, r.fail(err)
		}
		if !r.done {
			r.digest = crc32.Update(r.digest, castagnoli, chunk[off:off+n])
		}
		off += n
	}
	return r.done, nil
}

func (r *Restorer) fail(err error) error {
	r.err = err
	r.records = nil
	return err
}

// accept checks one parsed record against the state so far.
func (r *Restorer) accept(h header, body []byte, off int) error {
	seq := int(h.seq)
	if h.seq != r.seq {
		return invalid(off, seq, "sequence number %d, expected %d (records missing or out of order)", h.seq, r.seq)
	}
	r.bytes += encodedLen(h.length)
	if r.bytes > r.limits.MaxBytes {
		return invalid(off, seq, "state exceeds %d bytes", r.limits.MaxBytes)
	}
	le := binary.LittleEndian
	if h.seq == 0 {
		if h.kind != KindBegin {
			return invalid(off, seq, "first record is kind %#x, not Begin", uint16(h.kind))
		}
		if len(body) < 8 || len(body)-8 > MaxIdentity {
			return invalid(off, seq, "Begin body of %d bytes", len(body))
		}
		count := le.Uint32(body[4:])
		if count < 2 || int64(count) > int64(r.limits.MaxRecords) {
			return invalid(off, seq, "Begin announces %d records (2 to %d allowed)", count, r.limits.MaxRecords)
		}
		r.begin = Begin{
			Version:  FormatVersion,
			Scope:    Scope(le.Uint16(body[0:])),
			Records:  int(count),
			Identity: append([]byte(nil), body[8:]...),
			SaveID:   h.saveID,
		}
		r.seq++
		return nil
	}
	if h.saveID != r.begin.SaveID {
		return invalid(off, seq, "save id %#x, this state's is %#x (a chunk of another save)", h.saveID, r.begin.SaveID)
	}
	last := uint32(r.begin.Records - 1)
	switch {
	case h.kind == KindBegin:
		return invalid(off, seq, "a second Begin record")
	case h.kind == KindEnd && h.seq != last:
		return invalid(off, seq, "End record at %d, Begin announced %d records", h.seq, r.begin.Records)
	case h.kind != KindEnd && h.seq == last:
		return invalid(off, seq, "record %d should be End, is kind %#x", h.seq, uint16(h.kind))
	}
	if h.kind == KindEnd {
		if len(body) != 16 {
			return invalid(off, seq, "End body of %d bytes, want 16", len(body))
		}
		if c := le.Uint32(body[0:]); c != uint32(r.begin.Records) {
			return invalid(off, seq, "End counts %d records, Begin %d", c, r.begin.Records)
		}
		if d := le.Uint32(body[8:]); d != r.digest {
			return invalid(off, seq, "digest %#08x, records before End give %#08x", d, r.digest)
		}
		r.done = true
		r.seq++
		return nil
	}
	if h.kind >= KindBegin {
		return invalid(off, seq, "reserved kind %#x", uint16(h.kind))
	}
	r.records = append(r.records, Record{Kind: h.kind, Flags: h.flags, Body: append([]byte(nil), body...)})
	r.seq++
	return nil
}

// Done reports whether the whole state has been checked.
func (r *Restorer) Done() bool { return r.done && r.err == nil }

// Begin is what the Begin record said; valid once the first chunk passed.
func (r *Restorer) Begin() Begin { return r.begin }

// Records are the caller's records in order, without Begin and End. Act on
// them only once Done.
func (r *Restorer) Records() []Record { return r.records }

// Parse checks a whole saved state held in one buffer and returns its
// Begin and records.
func Parse(state []byte, l Limits) (Begin, []Record, error) {
	r := NewRestorer(l)
	done, err := r.Feed(state)
	if err != nil {
		return Begin{}, nil, err
	}
	if !done {
		return Begin{}, nil, invalid(len(state), -1, "state ends before its End record")
	}
	return r.Begin(), r.Records(), nil
}
