package ic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
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

// FuzzHeartbeat: the guest's heartbeat answer, which the host reads for
// its sequence, is refused (ErrMalformed) only when too short to hold
// one; what parses marshals to a body that parses the same.
func FuzzHeartbeat(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := UnmarshalHeartbeat(b)
		if err != nil {
			if h != nil || !errors.Is(err, ErrMalformed) || len(b) >= heartbeatMinimum {
				t.Fatalf("%d bytes: %+v, %v", len(b), h, err)
			}
			return
		}
		if h.Sequence != binary.LittleEndian.Uint64(b) {
			t.Fatalf("sequence %d from %x", h.Sequence, b[:8])
		}
		if again, err := UnmarshalHeartbeat(h.Marshal()); err != nil || *again != *h {
			t.Fatalf("round trip %+v %v", again, err)
		}
	})
}

// FuzzChosen: the guest's negotiate answer is a choice of one version
// each, "no common version" or ErrMalformed, never a panic. A choice is
// what the general parser reads too (the two must not disagree on what
// the guest said), and a body made of it gives the same choice.
func FuzzChosen(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fw, msg, ok, err := Chosen(b)
		if !ok && (fw != Version{} || msg != Version{}) {
			t.Fatalf("versions %v/%v without a choice", fw, msg)
		}
		if err != nil {
			if ok || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ok %v with %v", ok, err)
			}
			return
		}
		if !ok {
			if binary.LittleEndian.Uint16(b) != 0 && binary.LittleEndian.Uint16(b[2:]) != 0 {
				t.Fatalf("no common version from counts %x", b[:4])
			}
			return
		}
		n, err := UnmarshalNegotiate(b)
		if err != nil || len(n.Frameworks) != 1 || len(n.Messages) != 1 || n.Frameworks[0] != fw || n.Messages[0] != msg {
			t.Fatalf("chose %v/%v; the negotiate parser reads %+v, %v", fw, msg, n, err)
		}
		body := (&Negotiate{Frameworks: []Version{fw}, Messages: []Version{msg}}).Marshal()
		if fw2, msg2, ok2, err := Chosen(body); err != nil || !ok2 || fw2 != fw || msg2 != msg {
			t.Fatalf("round trip %v/%v %v %v", fw2, msg2, ok2, err)
		}
	})
}

// FuzzRestoreState: a server's saved state crosses from the predecessor,
// so whatever it holds must be refused or taken, never panic, for every
// service. A refused state leaves the server as it was: the same saved
// bytes, not negotiated, its token free. A taken one saves again to the
// same bytes (a heartbeat's last answer past the int64 range restores as
// none, so it saves as zero), and a server restored from those takes
// them the same way.
func FuzzRestoreState(f *testing.F) {
	f.Fuzz(func(t *testing.T, state []byte, svc uint8) {
		s := Service(svc % uint8(numServices))
		c := bareCore(s)
		before := saveOf(t, c)
		err := c.restoreState(nil, state)
		after := saveOf(t, c)
		if err != nil {
			if !bytes.Equal(after, before) || len(c.token) != 1 || isClosed(c.ready) {
				t.Fatalf("%s refused %x (%v) but changed: saves %x, token %d, negotiated %v", services[s].name, state, err, after, len(c.token), isClosed(c.ready))
			}
			return
		}
		stopRestored(c)
		want := state
		if s == ServiceHeartbeat {
			if last := binary.LittleEndian.Uint64(state[len(state)-8:]); last > 1<<63-1 {
				want = bytes.Clone(state)
				clear(want[len(want)-8:])
			}
		}
		if !bytes.Equal(after, want) {
			t.Fatalf("%s took %x, saves %x", services[s].name, state, after)
		}
		if isClosed(c.ready) != c.negotiated {
			t.Fatalf("negotiated %v, ready closed %v", c.negotiated, isClosed(c.ready))
		}
		c2 := bareCore(s)
		if err := c2.restoreState(nil, after); err != nil {
			t.Fatalf("%s refuses what it saved, %x: %v", services[s].name, after, err)
		}
		stopRestored(c2)
		if again := saveOf(t, c2); !bytes.Equal(again, after) {
			t.Fatalf("%s saves %x, restored from that %x", services[s].name, after, again)
		}
	})
}

// bareCore is a server of svc with the callbacks its constructor sets for
// a save and a restore, without a guest: restoreState needs no channel,
// and a fuzz iteration must not start one. A reply timeout of an hour
// keeps a restored request's timer from firing during the iteration.
func bareCore(svc Service) *core {
	c := newCore(svc, Config{ReplyTimeout: time.Hour})
	if svc == ServiceHeartbeat {
		s := &HeartbeatServer{core: c, hcfg: quietHeartbeat, stop: make(chan struct{})}
		c.extra, c.restoreExtra = s.saveExtra, s.restoreExtra
	}
	return c
}

func saveOf(t *testing.T, c *core) []byte {
	t.Helper()
	b, err := c.saveState(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stopRestored stops the timer of a restored request, which would
// otherwise outlive the iteration (one per exec, for an hour).
func stopRestored(c *core) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.cur; p != nil && p.timer != nil {
		p.timer.Stop()
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
