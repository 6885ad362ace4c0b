package ic

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// hexBytes reads a DEVICES.md dump: "0000: 01 00 ..." lines.
func hexBytes(t *testing.T, dump string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
		_, rest, _ := strings.Cut(line, ":")
		b, err := hex.DecodeString(strings.ReplaceAll(rest, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// DEVICES.md §3.10: the heartbeat channel's negotiate request and Linux's
// reply.
const (
	negotiateRequest = `
0000: 01 00 00 00 2c 00 00 00 00 00 00 00 00 00 00 00
0010: 00 00 18 00 00 00 00 00 00 03 00 00 02 00 02 00
0020: 00 00 00 00 01 00 00 00 03 00 00 00 03 00 00 00
0030: 04 00 00 00 00 00 00 00`
	negotiateAnswer = `
0000: 01 00 00 00 2c 00 00 00 00 00 00 00 00 00 00 00
0010: 00 00 10 00 00 00 00 00 00 05 00 00 01 00 01 00
0020: 00 00 00 00 03 00 00 00 03 00 00 00 03 00 00 00
0030: 04 00 00 00 00 00 00 00`
	heartbeatRequest = `
0000: 01 00 00 00 3c 00 00 00 03 00 00 00 01 00 03 00
0010: 00 00 28 00 00 00 00 00 00 03 00 00 05 00 00 00
0020: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
0030: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
0040: 00 00 00 00 00 00 00 00`
)

func TestNegotiateKnownAnswer(t *testing.T) {
	req := hexBytes(t, negotiateRequest)
	n := Negotiate{Frameworks: []Version{v10, v30}, Messages: []Version{v30, v40}}
	got := Build(Header{Type: MsgNegotiate, Flags: FlagsRequest}, n.Marshal())
	if !bytes.Equal(got, req) {
		t.Fatalf("request\n got %x\nwant %x", got, req)
	}
	m, err := Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := UnmarshalNegotiate(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	fw, msg, ok := Choose(offer, guestFrameworks, services[ServiceHeartbeat].guestMessages)
	if !ok || fw != v30 || msg != v30 {
		t.Fatalf("chose %v %v %v", fw, msg, ok)
	}
	want := hexBytes(t, negotiateAnswer)
	if got := NegotiateReply(req, fw, msg, true); !bytes.Equal(got, want) {
		t.Fatalf("answer\n got %x\nwant %x", got, want)
	}
	am, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if cf, cm, ok, err := Chosen(am.Body); err != nil || !ok || cf != v30 || cm != v30 {
		t.Fatalf("host read %v %v %v %v", cf, cm, ok, err)
	}
	// No common version: the counts are zero, the rest left as it was.
	none := NegotiateReply(req, Version{}, Version{}, false)
	if binary.LittleEndian.Uint32(none[offBody:]) != 0 || none[PipeHeaderSize+17] != FlagsResponse || binary.LittleEndian.Uint16(none[offSize:]) != 16 {
		t.Fatalf("no common version %x", none)
	}
	nm, _ := Parse(none)
	if _, _, ok, err := Chosen(nm.Body); ok || err != nil {
		t.Fatalf("no common version read as %v %v", ok, err)
	}
}

func TestHeartbeatKnownAnswer(t *testing.T) {
	req := hexBytes(t, heartbeatRequest)
	got := Build(Header{Framework: v30, Type: MsgHeartbeat, MsgVersion: v30, Flags: FlagsRequest}, (&Heartbeat{Sequence: 5}).Marshal())
	if !bytes.Equal(got, req) {
		t.Fatalf("request\n got %x\nwant %x", got, req)
	}
	want := bytes.Clone(req)
	want[0x19], want[0x1c] = 5, 6
	if out, ok := HeartbeatReply(req); !ok || !bytes.Equal(out, want) {
		t.Fatalf("answer %x", out)
	}
}

// TestShutdownLayout: reason at 0, timeout at 4, flags at 8, the message
// as UTF-16LE with its NUL at 12, 2060 bytes.
func TestShutdownLayout(t *testing.T) {
	s := Shutdown{Reason: ReasonPlanned, Timeout: 30, Flags: ShutdownRestart | ShutdownForce, Message: "Bye €"}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, ShutdownSize)
	binary.LittleEndian.PutUint32(want, 0x80000000)
	binary.LittleEndian.PutUint32(want[4:], 30)
	binary.LittleEndian.PutUint32(want[8:], 3)
	for i, u := range utf16.Encode([]rune("Bye €")) {
		binary.LittleEndian.PutUint16(want[12+2*i:], u)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x", b[:32])
	}
	got, err := UnmarshalShutdown(b)
	if err != nil || *got != s || got.Action() != "forced-reboot" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := (&Shutdown{Message: strings.Repeat("x", 1024)}).Marshal(); err == nil {
		t.Fatal("a message without room for its terminator marshalled")
	}
}

// TestTimeSyncLayouts: v3 parent, child, round trip, flags at 24; v4
// parent, reference, flags, leap, stratum at 16-18.
func TestTimeSyncLayouts(t *testing.T) {
	v3 := (&TimeSyncMsg{ParentTime: 0x0102030405060708, ChildTime: 9, RoundTrip: 10, Flags: TimeFlagSync}).Marshal()
	want := make([]byte, TimeSyncSizeV3)
	binary.LittleEndian.PutUint64(want, 0x0102030405060708)
	binary.LittleEndian.PutUint64(want[8:], 9)
	binary.LittleEndian.PutUint64(want[16:], 10)
	want[24] = 1
	if !bytes.Equal(v3, want) {
		t.Fatalf("v3 %x", v3)
	}
	v4 := (&TimeSyncMsg{V4: true, ParentTime: 7, ChildTime: 8, Flags: TimeFlagSample, Leap: 1, Stratum: 2}).Marshal()
	want = make([]byte, TimeSyncSizeV4)
	binary.LittleEndian.PutUint64(want, 7)
	binary.LittleEndian.PutUint64(want[8:], 8)
	want[16], want[17], want[18] = 2, 1, 2
	if !bytes.Equal(v4, want) {
		t.Fatalf("v4 %x", v4)
	}
	if m, err := UnmarshalTimeSync(v4[:22], true); err != nil || m.Stratum != 2 || m.ChildTime != 8 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := UnmarshalTimeSync(v3[:24], false); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short v3: %v", err)
	}
	// The epochs: 1970-01-01 is 116444736000000000 in Windows time.
	if ToWindowsTime(time.Unix(0, 0)) != 116444736000000000 || !FromWindowsTime(116444736000000000+10).Equal(time.Unix(0, 1000)) {
		t.Fatal("epoch")
	}
}

// TestKVPLayouts: the four operations at their documented offsets.
func TestKVPLayouts(t *testing.T) {
	utf := func(s string) []byte {
		var b []byte
		for _, u := range utf16.Encode([]rune(s + "\x00")) {
			b = binary.LittleEndian.AppendUint16(b, u)
		}
		return b
	}
	set := &KVP{Op: KVPSet, Pool: PoolGuest, ValueType: TypeString, Key: "k1", Value: "v"}
	b, err := set.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, KVPSize)
	want[0], want[1] = 1, 1
	binary.LittleEndian.PutUint32(want[4:], 1)
	binary.LittleEndian.PutUint32(want[8:], 6)
	binary.LittleEndian.PutUint32(want[12:], 4)
	copy(want[16:], utf("k1"))
	copy(want[528:], utf("v"))
	if !bytes.Equal(b, want) {
		t.Fatal("set layout")
	}
	enum := &KVP{Op: KVPEnumerate, Pool: PoolExternal, Index: 3}
	b, _ = enum.Marshal()
	want = make([]byte, KVPSize)
	want[0] = 3
	binary.LittleEndian.PutUint32(want[4:], 3)
	if !bytes.Equal(b, want) {
		t.Fatal("enumerate layout")
	}
	del := &KVP{Op: KVPDelete, Pool: PoolAutoExternal, Key: "x"}
	b, _ = del.Marshal()
	want = make([]byte, KVPSize)
	want[0], want[1] = 2, 3
	binary.LittleEndian.PutUint32(want[4:], 4)
	copy(want[8:], utf("x"))
	if !bytes.Equal(b, want) {
		t.Fatal("delete layout")
	}
	num := &KVP{Op: KVPSet, Pool: PoolExternal, ValueType: TypeQWord, Key: "n", Value: "4294967296"}
	b, _ = num.Marshal()
	if binary.LittleEndian.Uint32(b[12:]) != 8 || binary.LittleEndian.Uint64(b[528:]) != 1<<32 {
		t.Fatal("u64 value")
	}
	for _, k := range []*KVP{set, enum, del, num} {
		b, _ := k.Marshal()
		got, err := UnmarshalKVP(b, false)
		if err != nil || *got != *k {
			t.Fatalf("%+v: %+v %v", k, got, err)
		}
	}
	// A guest's get answer, Linux's way: type 1, size without the NUL.
	req := Build(Header{Framework: v30, Type: MsgKVP, MsgVersion: v40, Flags: FlagsRequest}, mustKVP(t, &KVP{Op: KVPGet, Pool: 0, ValueType: TypeString, Key: "k"}))
	m, _ := Parse(req)
	k, _ := UnmarshalKVP(m.Body, false)
	ans := KVPReply(req, k, StatusOK, "k", "val")
	am, err := Parse(ans)
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint32(am.Body[12:]) != 6 || am.Header.Flags != FlagsResponse {
		t.Fatalf("value size %d", binary.LittleEndian.Uint32(am.Body[12:]))
	}
	if r, err := UnmarshalKVP(am.Body, true); err != nil || r.Value != "val" {
		t.Fatalf("%+v %v", r, err)
	}
}

func mustKVP(t *testing.T, k *KVP) []byte {
	t.Helper()
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileInputs: each rule of the parsers, on input a peer may send.
func TestHostileInputs(t *testing.T) {
	req := hexBytes(t, heartbeatRequest)
	for name, b := range map[string][]byte{
		"empty":                {},
		"pipe only":            req[:8],
		"pipe size past data":  append(binary.LittleEndian.AppendUint32([]byte{1, 0, 0, 0}, 1000), req[8:]...),
		"pipe size past limit": append(binary.LittleEndian.AppendUint32([]byte{1, 0, 0, 0}, MaxPipeData+1), make([]byte, MaxPipeData+8)...),
		"pipe type 3":          append([]byte{3, 0, 0, 0}, req[4:]...),
		"message past pipe":    func() []byte { b := bytes.Clone(req); b[0x12] = 0x29; return b }(),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	neg := (&Negotiate{Frameworks: []Version{v30}, Messages: []Version{v30}}).Marshal()
	binary.LittleEndian.PutUint16(neg, 101)
	if _, err := UnmarshalNegotiate(neg); !errors.Is(err, ErrMalformed) {
		t.Errorf("101 versions: %v", err)
	}
	binary.LittleEndian.PutUint16(neg, 3)
	if _, err := UnmarshalNegotiate(neg); !errors.Is(err, ErrMalformed) {
		t.Errorf("counts past the body: %v", err)
	}
	if _, _, ok := Choose(&Negotiate{Frameworks: []Version{v30}, Messages: []Version{{9, 9}}}, guestFrameworks, services[0].guestMessages); ok {
		t.Error("no common message version chosen")
	}
	kv := mustKVP(t, &KVP{Op: KVPGet, Key: "abc"})
	for name, mut := range map[string]func([]byte){
		"odd key size":      func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 5) },
		"key past field":    func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 514) },
		"no terminator":     func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 6) },
		"value past field":  func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 2050) },
		"unknown operation": func(b []byte) { b[0] = 9 },
		"ip operation":      func(b []byte) { b[0] = KVPGetIPInfo },
		"unknown pool":      func(b []byte) { b[1] = 5 },
		"u32 of 8 bytes": func(b []byte) {
			binary.LittleEndian.PutUint32(b[4:], TypeU32)
			binary.LittleEndian.PutUint32(b[12:], 8)
		},
	} {
		b := bytes.Clone(kv)
		mut(b)
		if _, err := UnmarshalKVP(b, false); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := UnmarshalKVP(kv[:2575], false); !errors.Is(err, ErrMalformed) {
		t.Error("short get")
	}
	sd, _ := (&Shutdown{}).Marshal()
	for i := 12; i < ShutdownSize; i++ {
		sd[i] = 'a'
	}
	if _, err := UnmarshalShutdown(sd); !errors.Is(err, ErrMalformed) {
		t.Errorf("message without terminator: %v", err)
	}
	if _, err := UnmarshalShutdown(sd[:100]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short shutdown: %v", err)
	}
	if _, err := UnmarshalHeartbeat(make([]byte, 7)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short heartbeat: %v", err)
	}
}
