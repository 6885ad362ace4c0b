package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// hx decodes hex written with spaces for readability.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Two GUIDs whose wire bytes are written out by hand below: the network
// and SCSI interface types.
var (
	guidNet  = MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	guidSCSI = MustParseGUID("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f")
	guidSilo = MustParseGUID("00112233-4455-6677-8899-aabbccddeeff")
)

const (
	netWire  = "635161f8 3edf c546 913f f2d2f965ed0e"
	scsiWire = "d96361ba a104 294d b605 72e2ffb1dc7f"
	siloWire = "33221100 5544 7766 8899 aabbccddeeff"
)

// putAt writes v little-endian at off in b, in size bytes: the golden
// messages below are built field by field at the offsets WIRE.md gives,
// independently of the package's offset constants.
func putAt(b []byte, off, size int, v uint64) {
	for i := 0; i < size; i++ {
		b[off+i] = byte(v >> (8 * i))
	}
}

func userData() UserDefined {
	var u UserDefined
	for i := range u {
		u[i] = byte(i + 1)
	}
	return u
}

func goldenOffer() (*OfferChannel, []byte) {
	m := &OfferChannel{
		InterfaceType:         guidNet,
		InterfaceInstance:     guidSCSI,
		Flags:                 OfferFlagNamedPipeMode | OfferFlagEnumerateDeviceInterface,
		MMIOMegabytes:         0x1234,
		UserDefined:           userData(),
		SubchannelIndex:       3,
		MMIOMegabytesOptional: 0x5678,
		ChannelID:             0x7FF,
		MonitorID:             0x42,
		MonitorAllocated:      true,
		DedicatedInterrupt:    true,
		ConnectionID:          0x27FF,
	}
	b := make([]byte, 196)
	putAt(b, 0, 4, 1)
	copy(b[8:], hx(netWire))
	copy(b[24:], hx(scsiWire))
	// body 32-47 reserved
	putAt(b, 8+48, 2, 0x11)
	putAt(b, 8+50, 2, 0x1234)
	u := userData()
	copy(b[8+52:], u[:])
	putAt(b, 8+172, 2, 3)
	putAt(b, 8+174, 2, 0x5678)
	putAt(b, 8+176, 4, 0x7FF)
	b[8+180] = 0x42
	b[8+181] = 1
	putAt(b, 8+182, 2, 1)
	putAt(b, 8+184, 4, 0x27FF)
	return m, b
}

func goldenOpen(extended bool) (*OpenChannel, []byte) {
	m := &OpenChannel{
		ChannelID: 9, OpenID: 9, RingGpadlID: 0xE1E10, TargetVP: VPIndexNoInterrupts,
		DownstreamRingPageOffset: 513, UserData: userData(),
	}
	n := 148
	if extended {
		m.Extended, m.ConnectionID, m.EventFlag, m.Flags = true, 0x2009, 9, OpenFlagRedirectInterrupt
		n = 156
	}
	b := make([]byte, n)
	putAt(b, 0, 4, 5)
	putAt(b, 8, 4, 9)
	putAt(b, 12, 4, 9)
	putAt(b, 16, 4, 0xE1E10)
	putAt(b, 20, 4, 0xFFFFFFFF)
	putAt(b, 24, 4, 513)
	u := userData()
	copy(b[28:], u[:])
	if extended {
		putAt(b, 148, 4, 0x2009)
		putAt(b, 152, 2, 9)
		putAt(b, 154, 2, 1)
	}
	return m, b
}

type golden struct {
	name string
	m    Message
	wire []byte
}

func goldens() []golden {
	offer, offerWire := goldenOffer()
	open, openWire := goldenOpen(false)
	openX, openXWire := goldenOpen(true)
	return []golden{
		{"OfferChannel", offer, offerWire},
		{"RescindChannelOffer", &RescindChannelOffer{ChannelID: 5}, hx("02000000 00000000 05000000")},
		{"RequestOffers", &RequestOffers{}, hx("03000000 00000000")},
		{"AllOffersDelivered", &AllOffersDelivered{}, hx("04000000 00000000")},
		{"OpenChannel", open, openWire},
		{"OpenChannel/extended", openX, openXWire},
		{"OpenChannelResult", &OpenChannelResult{ChannelID: 1, OpenID: 1, Status: 0xC0000001},
			hx("06000000 00000000 01000000 01000000 010000c0")},
		{"CloseChannel", &CloseChannel{ChannelID: 7}, hx("07000000 00000000 07000000")},
		{"GpadlHeader", &GpadlHeader{ChannelID: 1, GpadlID: 0xE1E10, RangeBufferLen: 24, RangeCount: 1,
			Data: []uint64{0x2000, 0x12345, 0x12346}},
			hx("08000000 00000000 01000000 101e0e00 1800 0100 00200000 00000000 4523010000000000 4623010000000000")},
		{"GpadlBody", &GpadlBody{GpadlID: 0xE1E10, Data: []uint64{0x12347}},
			hx("09000000 00000000 00000000 101e0e00 4723010000000000")},
		{"GpadlCreated", &GpadlCreated{ChannelID: 1, GpadlID: 0xE1E10},
			hx("0a000000 00000000 01000000 101e0e00 00000000")},
		{"GpadlTeardown", &GpadlTeardown{ChannelID: 1, GpadlID: 0xE1E10},
			hx("0b000000 00000000 01000000 101e0e00")},
		{"GpadlTorndown", &GpadlTorndown{GpadlID: 0xE1E10}, hx("0c000000 00000000 101e0e00")},
		{"RelIdReleased", &RelIDReleased{ChannelID: 3}, hx("0d000000 00000000 03000000")},
		{"InitiateContact/Win8", &InitiateContact{VersionRequested: VersionWin8, TargetMessageVP: 1,
			InterruptPage: 0x1000, ParentToChildMonitorPage: 0x2000, ChildToParentMonitorPage: 0x3000},
			hx("0e000000 00000000 04000200 01000000 0010000000000000 0020000000000000 0030000000000000")},
		{"InitiateContact/Iron", &InitiateContact{VersionRequested: VersionIron,
			MessageSINT: 2, ParentToChildMonitorPage: 0x2000, ChildToParentMonitorPage: 0x3000},
			hx("0e000000 00000000 03000500 00000000 02 00 0000 00000000 0020000000000000 0030000000000000")},
		{"InitiateContact/Copper+client", &InitiateContact{VersionRequested: VersionCopper,
			MessageSINT: 2, MessageVTL: 1, Features: FeatureClientID | FeaturePauseResume,
			HasClientID: true, ClientID: guidSilo},
			hx("0e000000 00000000 00000600 00000000 02 01 0000 28000000 0000000000000000 0000000000000000" + siloWire)},
		{"VersionResponse", &VersionResponse{VersionSupported: true, VersionOrConnectionID: 4},
			hx("0f000000 00000000 01 00 0000 04000000")},
		{"VersionResponse/features", &VersionResponse{VersionSupported: true, VersionOrConnectionID: 4,
			HasFeatures: true, SupportedFeatures: 0x3F},
			hx("0f000000 00000000 01 00 0000 04000000 3f000000")},
		{"VersionResponse/monitor", &VersionResponse{ConnectionState: ConnectionLowResources,
			VersionOrConnectionID: 4, HasFeatures: true, SupportedFeatures: FeatureServerSpecifiedMonitorPages,
			HasMonitorPages: true, ParentToChildMonitorPage: 0x1122334455667788, ChildToParentMonitorPage: 0x99},
			hx("0f000000 00000000 00 01 0000 04000000 40000000 00000000 8877665544332211 9900000000000000")},
		{"Unload", &Unload{}, hx("10000000 00000000")},
		{"UnloadComplete", &UnloadComplete{}, hx("11000000 00000000")},
		{"OpenReservedChannel", &OpenReservedChannel{ChannelID: 1, TargetVP: 2, TargetSINT: 3, RingGpadlID: 4,
			DownstreamRingPageOffset: 5},
			hx("12000000 00000000 01000000 02000000 03000000 04000000 05000000")},
		{"CloseReservedChannel", &CloseReservedChannel{ChannelID: 1, TargetVP: 2, TargetSINT: 3},
			hx("13000000 00000000 01000000 02000000 03000000")},
		{"CloseReservedResponse", &CloseReservedResponse{ChannelID: 1}, hx("14000000 00000000 01000000")},
		{"TlConnectRequest", &TLConnectRequest{EndpointID: guidNet, ServiceID: guidSCSI},
			hx("15000000 00000000" + netWire + scsiWire)},
		{"TlConnectRequest/silo", &TLConnectRequest{EndpointID: guidNet, ServiceID: guidSCSI,
			HasSiloID: true, SiloID: guidSilo},
			hx("15000000 00000000" + netWire + scsiWire + siloWire)},
		{"ModifyChannel", &ModifyChannel{ChannelID: 1, TargetVP: 3}, hx("16000000 00000000 01000000 03000000")},
		{"TlConnectRequestResult", &TLConnectRequestResult{EndpointID: guidNet, ServiceID: guidSCSI,
			Status: 0xC0000236}, hx("17000000 00000000" + netWire + scsiWire + "360200c0")},
		{"ModifyChannelResponse", &ModifyChannelResponse{ChannelID: 1, Status: 0xC0000001},
			hx("18000000 00000000 01000000 010000c0")},
		{"ModifyConnection", &ModifyConnection{ParentToChildMonitorPage: 0x1000, ChildToParentMonitorPage: 0x2000},
			hx("19000000 00000000 0010000000000000 0020000000000000")},
		{"ModifyConnectionResponse", &ModifyConnectionResponse{ConnectionState: ConnectionUnknownFailure},
			hx("1a000000 00000000 02")},
		{"Pause", &Pause{}, hx("1b000000 00000000")},
		{"PauseResponse", &PauseResponse{}, hx("1c000000 00000000")},
		{"Resume", &Resume{}, hx("1d000000 00000000")},
	}
}

func TestGolden(t *testing.T) {
	seen := map[MessageType]bool{}
	for _, g := range goldens() {
		t.Run(g.name, func(t *testing.T) {
			seen[g.m.Type()] = true
			if got := Marshal(g.m); !bytes.Equal(got, g.wire) {
				t.Fatalf("Marshal:\n got % x\nwant % x", got, g.wire)
			}
			if g.m.Size() != len(g.wire) {
				t.Errorf("Size = %d, want %d", g.m.Size(), len(g.wire))
			}
			// Append must add to what is there, not overwrite it.
			if got := g.m.Append([]byte{0xAA}); got[0] != 0xAA || !bytes.Equal(got[1:], g.wire) {
				t.Errorf("Append to a non-empty slice: % x", got)
			}
			m, err := Decode(g.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, g.m) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", m, g.m)
			}
			if m.Type().String() != strings.Split(g.name, "/")[0] {
				t.Errorf("type %d named %q", m.Type(), m.Type())
			}
		})
	}
	for ty := TypeOfferChannel; ty <= TypeResume; ty++ {
		if !seen[ty] {
			t.Errorf("no golden message for %v", ty)
		}
	}
}

// Sizes WIRE.md states outright.
func TestWireSizes(t *testing.T) {
	offer, _ := goldenOffer()
	open, _ := goldenOpen(false)
	full := &GpadlBody{Data: make([]uint64, 28)}
	hdr := &GpadlHeader{Data: make([]uint64, 27)}
	for _, c := range []struct {
		name string
		got  int
		want int
	}{
		{"OfferChannel", len(Marshal(offer)), 196},
		{"OpenChannel", len(Marshal(open)), 148},
		{"GpadlHeader fixed", len(Marshal(&GpadlHeader{})), 20},
		{"GpadlHeader full", len(Marshal(hdr)), 236},
		{"GpadlBody full", len(Marshal(full)), 240},
		{"GpadlHeaderMaxWords", GpadlHeaderMaxWords, 27},
		{"GpadlBodyMaxWords", GpadlBodyMaxWords, 28},
		{"TlConnectRequest", len(Marshal(&TLConnectRequest{})), 40},
		{"ModifyChannel", len(Marshal(&ModifyChannel{})), 16},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}

func TestOfferPipeMode(t *testing.T) {
	m, _ := goldenOffer()
	m.UserDefined = UserDefined{}
	m.UserDefined.SetPipeMode(PipeModeMessage)
	b := Marshal(m)
	if b[8+52] != 4 || b[8+53] != 0 {
		t.Fatalf("pipe mode not at body offset 52: % x", b[56:68])
	}
	d, _ := Decode(b)
	if o := d.(*OfferChannel); !o.IsPipe() || o.UserDefined.PipeMode() != PipeModeMessage {
		t.Fatalf("pipe mode lost: %+v", o)
	}
}

// Reserved bits and padding are ignored on the way in and zero on the way
// out.
func TestReservedBitsIgnored(t *testing.T) {
	_, b := goldenOffer()
	b[4] = 0xFF      // header padding
	b[8+32] = 0xFF   // reserved u64
	b[8+181] |= 0xFE // bits beside monitor allocated
	b[8+183] |= 0x80 // bits beside dedicated interrupt
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want, wire := goldenOffer()
	if !reflect.DeepEqual(m, Message(want)) {
		t.Fatalf("got %+v", m)
	}
	if !bytes.Equal(Marshal(m), wire) {
		t.Fatal("re-marshal is not canonical")
	}
	// The 5.0 InitiateContact's u16 padding, and the interrupt page read as
	// target info.
	ic := hx("0e000000 00000000 00000500 00000000 02 00 ffff 00000000 0000000000000000 0000000000000000")
	m, err = Decode(ic)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.(*InitiateContact); c.MessageSINT != 2 || c.InterruptPage != 0 {
		t.Fatalf("got %+v", c)
	}
}

func TestDecodeRejects(t *testing.T) {
	long := make([]byte, 241)
	long[0] = 9
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short header", hx("03000000 000000"), ErrShort},
		{"over 240", long, ErrTooLong},
		{"type 0", hx("00000000 00000000"), ErrUnknownType},
		{"type 30", hx("1e000000 00000000"), ErrUnknownType},
		{"type max", hx("ffffffff 00000000 00000000"), ErrUnknownType},
		{"offer 195", make195(), ErrShort},
		{"rescind 11", hx("02000000 00000000 050000"), ErrShort},
		{"rescind 13", hx("02000000 00000000 05000000 00"), ErrLength},
		{"request offers with body", hx("03000000 00000000 00"), ErrLength},
		{"open 147", withType(5, 147), ErrShort},
		{"open 150", withType(5, 150), ErrLength},
		{"open 160", withType(5, 160), ErrLength},
		{"gpadl header 19", withType(8, 19), ErrShort},
		{"gpadl header 21", withType(8, 21), ErrLength},
		{"gpadl header 244", withType(8, 244), ErrTooLong},
		{"gpadl body 16", withType(9, 16), ErrShort},
		{"gpadl body 20", withType(9, 20), ErrShort},
		{"gpadl body 28", withType(9, 28), ErrLength},
		{"contact 39", withType(14, 39), ErrShort},
		{"contact 48", withType(14, 48), ErrLength},
		{"version response 15", withType(15, 15), ErrShort},
		{"version response 24", withType(15, 24), ErrLength},
		{"version response 30", withType(15, 30), ErrLength},
		{"version response 41", withType(15, 41), ErrLength},
		{"tl connect 41", withType(21, 41), ErrLength},
		{"modify connection response 8", withType(26, 8), ErrShort},
		{"modify connection response 10", withType(26, 10), ErrLength},
		{"resume 9", withType(29, 9), ErrLength},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.b)
			if m != nil || !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, %v; want nil, %v", m, err, c.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Len != len(c.b) {
				t.Fatalf("error %#v does not carry the length", err)
			}
		})
	}
}

// A message shorter than its header names the type when its type field
// is whole: "InitiateContact message of 4 bytes", not "MessageType(0)".
func TestDecodeShortHeaderNamesType(t *testing.T) {
	_, err := Decode(hx("0e000000"))
	var de *DecodeError
	if !errors.As(err, &de) || de.Type != TypeInitiateContact || !errors.Is(err, ErrShort) {
		t.Fatalf("Decode of a 4-byte InitiateContact: %v", err)
	}
	if _, err := Decode(hx("0e0000")); !errors.As(err, &de) || de.Type != 0 {
		t.Fatalf("Decode of 3 bytes: %v, want no type", err)
	}
}

// Every golden message one byte shorter or longer is rejected.
func TestDecodeRejectsOffByOne(t *testing.T) {
	for _, g := range goldens() {
		for _, n := range []int{len(g.wire) - 1, len(g.wire) + 1} {
			b := make([]byte, n)
			copy(b, g.wire)
			if m, err := Decode(b); err == nil {
				t.Errorf("%s: %d bytes decoded as %+v", g.name, n, m)
			}
		}
	}
}

func TestDecodeErrorText(t *testing.T) {
	_, err := Decode(withType(15, 30))
	const want = "protocol: VersionResponse message of 30 bytes: message length matches no form of its type (want 16, 20 or 40)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func withType(ty MessageType, n int) []byte {
	b := make([]byte, n)
	le.PutUint32(b, uint32(ty))
	return b
}

func make195() []byte { return withType(TypeOfferChannel, 195) }

func TestMessageTypeInfo(t *testing.T) {
	if TypeModifyConnection.Feature() != FeatureModifyConnection || TypeResume.MinVersion() != VersionCopper {
		t.Error("Copper message gating")
	}
	if TypeInitiateContact.MinVersion() != 0 || MessageType(99).String() != "MessageType(99)" {
		t.Error("contact gating or unknown name")
	}
	if MessageType(0).Known() || !TypeResume.Known() || MessageType(30).Known() {
		t.Error("Known")
	}
}
