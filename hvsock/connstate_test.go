package hvsock

import (
	"bytes"
	"testing"

	"github.com/govmbus/govmbus/savedstate"
)

func encodeConnState(s *ConnState) []byte {
	var e savedstate.Encoder
	s.Encode(&e)
	return e.Body()
}

// TestConnStateRoundTrip: a state decodes to what was encoded, and the
// states that cannot be (ends that contradict the bytes, both directions
// over, no channel, unknown flags or version) are refused.
func TestConnStateRoundTrip(t *testing.T) {
	good := &ConnState{Route: "r", Service: ServiceForPort(5000), Endpoint: ServiceForPort(1234), ForGuestAccept: true,
		ToLocal: []byte("to local"), GuestEnded: true, ToGuest: []byte("to guest"), Channel: []byte{1, 2, 3}}
	got, err := DecodeConnState(encodeConnState(good))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encodeConnState(got), encodeConnState(good)) || got.Route != "r" || !got.GuestEnded || got.LocalShut || !got.ForGuestAccept {
		t.Fatalf("decoded %+v", got)
	}
	bad := map[string]func(s *ConnState){
		"local shut before the guest's end": func(s *ConnState) { s.GuestEnded, s.LocalShut, s.ToLocal = false, true, nil },
		"local shut with bytes before it":   func(s *ConnState) { s.LocalShut = true },
		"guest shut with bytes before it":   func(s *ConnState) { s.LocalEnded, s.GuestShut = true, true },
		"both over": func(s *ConnState) {
			s.ToLocal, s.ToGuest, s.LocalShut, s.LocalEnded, s.GuestShut = nil, nil, true, true, true
		},
		"no channel": func(s *ConnState) { s.Channel = nil },
	}
	for name, change := range bad {
		s := *good
		change(&s)
		if _, err := DecodeConnState(encodeConnState(&s)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	b := encodeConnState(good)
	b[0] = 2
	if _, err := DecodeConnState(b); err == nil {
		t.Error("version 2: decoded")
	}
	b = encodeConnState(good)
	b[1] |= 0x80
	if _, err := DecodeConnState(b); err == nil {
		t.Error("an unknown flag: decoded")
	}
	if _, err := DecodeConnState(append(encodeConnState(good), 0)); err == nil {
		t.Error("a trailing byte: decoded")
	}
}

// FuzzDecodeConnState: a connection's state comes from the predecessor;
// whatever the bytes, DecodeConnState gives an error or a state, never a
// panic, and a state it gives encodes back to the same bytes. Seeds in
// testdata/fuzz/FuzzDecodeConnState.
func FuzzDecodeConnState(f *testing.F) {
	f.Add(encodeConnState(&ConnState{Route: "x", ToGuest: []byte("abc"), LocalEnded: true, Channel: []byte{0}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeConnState(b)
		if err != nil {
			if s != nil {
				t.Fatalf("an error and a state: %v", err)
			}
			return
		}
		if again := encodeConnState(s); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded differently:\n%x\n%x", again, b)
		}
	})
}
