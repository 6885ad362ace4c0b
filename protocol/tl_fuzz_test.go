package protocol

import (
	"bytes"
	"testing"
)

// FuzzTLConnect decodes any body as a TlConnectRequest and as a
// TlConnectRequestResult: only the 40- and 56-byte requests and the
// 44-byte result are accepted, they re-encode to the bytes they came
// from (the header's padding aside), and the GUIDs sit where DEVICES.md
// §2.3 puts them.
func FuzzTLConnect(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0xAB}, 32))
	f.Add(bytes.Repeat([]byte{0x5C}, 48))
	f.Add(bytes.Repeat([]byte{0x36}, 36))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, typ := range []MessageType{TypeTLConnectRequest, TypeTLConnectRequestResult} {
			b := make([]byte, 8, 8+len(body))
			le.PutUint32(b, uint32(typ))
			b = append(b, body...)
			m, err := Decode(b)
			ok := (typ == TypeTLConnectRequest && (len(b) == 40 || len(b) == 56)) ||
				(typ == TypeTLConnectRequestResult && len(b) == 44)
			if (err == nil) != ok {
				t.Fatalf("%v of %d bytes: err %v", typ, len(b), err)
			}
			if err != nil {
				continue
			}
			if !bytes.Equal(Marshal(m), b) {
				t.Fatalf("%v does not re-encode to its bytes", typ)
			}
			var ep, svc GUID
			switch m := m.(type) {
			case *TLConnectRequest:
				ep, svc = m.EndpointID, m.ServiceID
				if m.HasSiloID != (len(b) == 56) || (m.HasSiloID && !bytes.Equal(m.SiloID[:], b[40:56])) {
					t.Fatalf("silo id %v from %d bytes", m.SiloID, len(b))
				}
			case *TLConnectRequestResult:
				ep, svc = m.EndpointID, m.ServiceID
				if m.Status != le.Uint32(b[40:]) {
					t.Fatal("status")
				}
			}
			if !bytes.Equal(ep[:], b[8:24]) || !bytes.Equal(svc[:], b[24:40]) {
				t.Fatal("GUIDs misplaced")
			}
		}
	})
}

// FuzzHVSockOffer reads the hvsock fields of any user-defined area: what
// it reads, stored into a zero area over the same pipe mode, reads back
// the same, and storing it back into the original changes only the two
// flag bytes (which read any non-zero value as set).
func FuzzHVSockOffer(f *testing.F) {
	var u UserDefined
	u.SetHVSock(HVSockOffer{ForGuestAccept: true, ParameterVersion: 1})
	f.Add(u[:])
	f.Add(bytes.Repeat([]byte{0xFF}, UserDefinedSize))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var u UserDefined
		copy(u[:], b)
		o := u.HVSock()
		var v UserDefined
		v.SetPipeMode(u.PipeMode())
		v.SetHVSock(o)
		if v.HVSock() != o || v.PipeMode() != u.PipeMode() {
			t.Fatalf("%+v does not survive a round trip", o)
		}
		w := u
		w.SetHVSock(o)
		w[hvsForGuestAccept], w[hvsForGuestContainer] = u[hvsForGuestAccept], u[hvsForGuestContainer]
		if w != u {
			t.Fatal("SetHVSock changed bytes it does not own")
		}
	})
}
