package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/govmbus/govmbus/gpa"
)

func FuzzDecode(f *testing.F) {
	for _, g := range goldens() {
		f.Add(g.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		m, err := Decode(b)
		if !bytes.Equal(in, b) {
			t.Fatal("Decode wrote to its input")
		}
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with a message %+v", err, m)
			}
			var de *DecodeError
			if !errors.As(err, &de) || !(errors.Is(err, ErrShort) || errors.Is(err, ErrTooLong) ||
				errors.Is(err, ErrUnknownType) || errors.Is(err, ErrLength)) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if m.Size() != len(b) || m.Type() != MessageType(le.Uint32(b)) {
			t.Fatalf("%v: Size %d for %d bytes", m.Type(), m.Size(), len(b))
		}
		out := Marshal(m)
		if len(out) != len(b) {
			t.Fatalf("%v: re-marshalled to %d bytes from %d", m.Type(), len(out), len(b))
		}
		// Decoding drops only padding and reserved bits: the canonical
		// bytes decode to the same message and encode to themselves.
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("canonical bytes rejected: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("canonical decode differs:\n%+v\n%+v", m, m2)
		}
		if !bytes.Equal(Marshal(m2), out) {
			t.Fatal("canonical form is not stable")
		}
		// The decoded message must not alias the input.
		clear(b)
		if !reflect.DeepEqual(m, m2) {
			t.Fatal("message aliases its input")
		}
	})
}

// FuzzGpadlReassembly feeds a decoded GpadlHeader and a stream of
// length-prefixed messages to a reassembler. Whatever it accepts must be a
// valid range list that matches the header and splits back into messages
// the reassembler accepts again.
func FuzzGpadlReassembly(f *testing.F) {
	seed := func(ranges ...gpa.Range) {
		msgs, err := NewGpadlMessages(1, 7, ranges)
		if err != nil {
			panic(err)
		}
		var rest []byte
		for _, m := range msgs[1:] {
			rest = append(rest, byte(m.Size()))
			rest = m.Append(rest)
		}
		f.Add(Marshal(msgs[0]), rest)
	}
	seed(pages(1, 1))
	seed(pages(1, 27))
	seed(pages(1, 60))
	seed(gpa.Range{ByteCount: 0x20, ByteOffset: 0x10, PFNs: []uint64{5}}, pages(9, 30))
	f.Fuzz(func(t *testing.T, hdr, rest []byte) {
		m, err := Decode(hdr)
		if err != nil {
			return
		}
		h, ok := m.(*GpadlHeader)
		if !ok {
			return
		}
		r, err := NewGpadlReassembler(h)
		if err != nil {
			if r != nil || !errors.Is(err, ErrBadGpadl) {
				t.Fatalf("%v, %v", r, err)
			}
			return
		}
		for len(rest) > 0 && !r.Done() {
			n := min(int(rest[0]), len(rest)-1)
			msg := rest[1 : 1+n]
			rest = rest[1+n:]
			m, err := Decode(msg)
			if err != nil {
				continue
			}
			b, ok := m.(*GpadlBody)
			if !ok {
				continue
			}
			if _, err := r.AddBody(b); err != nil {
				if !errors.Is(err, ErrBadGpadl) || r.Done() {
					t.Fatalf("AddBody: %v (done %v)", err, r.Done())
				}
				if _, err2 := r.Ranges(); err2 != err {
					t.Fatal("error not sticky")
				}
				return
			}
		}
		ranges, err := r.Ranges()
		if !r.Done() {
			if err == nil || ranges != nil {
				t.Fatal("incomplete reassembly returned ranges")
			}
			return
		}
		if err != nil || len(ranges) != int(h.RangeCount) || gpa.EncodedLenOf(ranges) != int(h.RangeBufferLen) {
			t.Fatalf("ranges %d (%d bytes) for header %+v: %v", len(ranges), gpa.EncodedLenOf(ranges), h, err)
		}
		for _, rg := range ranges {
			if err := rg.Validate(); err != nil {
				t.Fatal(err)
			}
		}
		_, again := roundTripNoFatal(ranges)
		if !reflect.DeepEqual(again, ranges) {
			t.Fatalf("re-split differs")
		}
	})
}

// roundTripNoFatal is roundTrip for the fuzzer, which has no *testing.T of
// the right shape to fail with: any error is a nil result.
func roundTripNoFatal(ranges []gpa.Range) ([]Message, []gpa.Range) {
	msgs, err := NewGpadlMessages(1, 7, ranges)
	if err != nil {
		return nil, nil
	}
	var r *GpadlReassembler
	for i, m := range msgs {
		d, err := Decode(Marshal(m))
		if err != nil {
			return nil, nil
		}
		if i == 0 {
			if r, err = NewGpadlReassembler(d.(*GpadlHeader)); err != nil {
				return nil, nil
			}
		} else if _, err := r.AddBody(d.(*GpadlBody)); err != nil {
			return nil, nil
		}
	}
	got, _ := r.Ranges()
	return msgs, got
}
