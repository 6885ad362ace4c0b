package ic

import (
	"bytes"
	"testing"
)

// FuzzParse: any payload either parses, with a body exactly its header's
// size inside the payload, or is ErrMalformed; never a panic.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if m != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if len(m.Body) != int(m.Header.Size) || PipeHeaderSize+HeaderSize+len(m.Body) > len(b) {
			t.Fatalf("body of %d bytes, size %d, payload %d", len(m.Body), m.Header.Size, len(b))
		}
		// Building it again gives the same message.
		again, err := Parse(Build(m.Header, m.Body))
		if err != nil || !bytes.Equal(again.Body, m.Body) || again.Header != m.Header {
			t.Fatalf("rebuilt: %v", err)
		}
	})
}

// FuzzNegotiate: an offer parses within its counts and the body, and the
// guest's choice is always one the offer lists.
func FuzzNegotiate(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := UnmarshalNegotiate(b)
		if err != nil {
			return
		}
		if 8+4*(len(n.Frameworks)+len(n.Messages)) > len(b) || len(n.Frameworks) > MaxVersions || len(n.Messages) > MaxVersions {
			t.Fatalf("%d+%d versions from %d bytes", len(n.Frameworks), len(n.Messages), len(b))
		}
		if fw, msg, ok := Choose(n, guestFrameworks, services[ServiceKVP].guestMessages); ok && (!containsVersion(n.Frameworks, fw) || !containsVersion(n.Messages, msg)) {
			t.Fatalf("chose %v/%v, not offered", fw, msg)
		}
		Chosen(b) //nolint:errcheck // only that it does not panic
	})
}

// FuzzShutdown: a body parses or is refused; a parsed one marshals to a
// body that parses to the same.
func FuzzShutdown(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalShutdown(b)
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("a parsed message does not marshal: %v", err)
		}
		if again, err := UnmarshalShutdown(out); err != nil || *again != *s {
			t.Fatalf("round trip %+v %v", again, err)
		}
	})
}

// FuzzTimeSync: both layouts, any bytes.
func FuzzTimeSync(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, v4 bool) {
		m, err := UnmarshalTimeSync(b, v4)
		if err != nil {
			return
		}
		if again, err := UnmarshalTimeSync(m.Marshal(), v4); err != nil || *again != *m {
			t.Fatalf("round trip %+v %v", again, err)
		}
		FromWindowsTime(m.ParentTime)
	})
}

// FuzzKVP: requests (strict) and answers (loose); a parsed request
// marshals back to one that parses the same.
func FuzzKVP(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, reply bool) {
		k, err := UnmarshalKVP(b, reply)
		if err != nil {
			return
		}
		if reply {
			return
		}
		out, err := k.Marshal()
		if err != nil {
			t.Fatalf("a parsed request does not marshal: %v", err)
		}
		if again, err := UnmarshalKVP(out, false); err != nil || *again != *k {
			t.Fatalf("round trip %+v %v", again, err)
		}
	})
}

// FuzzClientAnswer: what the guest answers to any host message: nothing,
// or a payload no longer than the request that parses as a response.
func FuzzClientAnswer(f *testing.F) {
	c := &Client{cfg: ClientConfig{}, kvp: &kvpStore{}}
	c.log = discard
	f.Fuzz(func(t *testing.T, b []byte, svc uint8) {
		s := Service(svc % uint8(numServices))
		m, err := Parse(b)
		if err != nil || m.Header.Flags&FlagRequest == 0 {
			return
		}
		req := bytes.Clone(b[:PipeHeaderSize+int(m.PipeSize)])
		var out []byte
		switch {
		case m.Header.Type == MsgNegotiate:
			out = c.negotiate(s, req, m)
		case m.Header.Type == services[s].msg:
			out = c.serve(s, req, m)
		}
		if out == nil {
			return
		}
		if len(out) != len(req) {
			t.Fatalf("answer of %d bytes to a request of %d", len(out), len(req))
		}
		if am, err := Parse(out); err != nil || am.Header.Flags != FlagsResponse {
			t.Fatalf("answer does not parse as a response: %v", err)
		}
	})
}
