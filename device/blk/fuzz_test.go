package blk

import "testing"

// FuzzParseRequest: any payload parses to a valid request or an error
// status, never a panic, and a valid one marshals back to its bytes.
func FuzzParseRequest(f *testing.F) {
	for _, r := range []Request{{Op: OpIdentify}, {Op: OpRead, Offset: 4096, Length: 512}, {Op: OpWrite, Offset: 1 << 40, Length: 1 << 20}, {Op: OpFlush}} {
		b := make([]byte, RequestSize)
		r.Marshal(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, st := ParseRequest(b)
		if st != StatusOK {
			if r != (Request{}) {
				t.Fatalf("error %v with a request %+v", st, r)
			}
			return
		}
		if r.Op < OpIdentify || r.Op > OpFlush {
			t.Fatalf("op %d accepted", r.Op)
		}
		out := make([]byte, RequestSize)
		r.Marshal(out)
		if string(out) != string(b[:RequestSize]) {
			t.Fatalf("round trip %x → %x", b, out)
		}
	})
}

// FuzzParseResponse: the client reads the host's completions, so any
// payload is a response or too short, never a panic; a response is its
// first ResponseSize bytes as Marshal writes them (what follows is not
// read).
func FuzzParseResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := ParseResponse(b)
		if !ok {
			if r != (Response{}) || len(b) >= ResponseSize {
				t.Fatalf("%d bytes refused, with %+v", len(b), r)
			}
			return
		}
		out := make([]byte, ResponseSize)
		r.Marshal(out)
		if string(out) != string(b[:ResponseSize]) {
			t.Fatalf("round trip %x → %x", b, out)
		}
	})
}
