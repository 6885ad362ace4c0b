package protocol

import (
	"errors"
	"slices"
	"testing"
)

func TestVersions(t *testing.T) {
	vs := Versions()
	if len(vs) != 11 || vs[0] != VersionCopper || vs[len(vs)-1] != VersionV1 {
		t.Fatalf("Versions = %v", vs)
	}
	if !slices.IsSortedFunc(vs, func(a, b Version) int { return int(b) - int(a) }) {
		t.Fatalf("not descending: %v", vs)
	}
	vs[0] = 0 // the caller's copy
	if Versions()[0] != VersionCopper {
		t.Fatal("Versions shares its array")
	}
	for _, c := range []struct {
		v    Version
		want string
	}{
		{VersionV1, "V1 (0.13)"}, {VersionWin81, "Win8.1 (3.0)"}, {VersionWin10RS30, "Win10 RS3.0 (4.1)"},
		{VersionIron, "Iron (5.3)"}, {VersionCopper, "Copper (6.0)"}, {MakeVersion(7, 2), "7.2"},
	} {
		if got := c.v.String(); got != c.want {
			t.Errorf("%#x: %q, want %q", uint32(c.v), got, c.want)
		}
	}
	if VersionWin8 != MakeVersion(2, 4) || VersionWin8.Major() != 2 || VersionWin8.Minor() != 4 {
		t.Error("MakeVersion")
	}
	if MakeVersion(7, 0).Known() || !VersionWin7.Known() {
		t.Error("Known")
	}
}

func TestFlagStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{FeatureFlags(0).String(), "0"},
		{(FeatureModifyConnection | FeaturePauseResume).String(), "modify-connection|pause-resume"},
		{AllFeatures.String(), "guest-specified-signal-params|interrupt-redirection|modify-connection|client-id|" +
			"confidential-channels|pause-resume|server-specified-monitor-pages|gpa-pinning"},
		{FeatureFlags(0x301).String(), "guest-specified-signal-params|0x300"},
		{(OfferFlagNamedPipeMode | OfferFlagTLNPIProvider | 0x4000).String(), "named-pipe-mode|tlnpi-provider|0x4000"},
		{OfferFlagGPADLs.String(), "gpadls/confidential-external-memory"},
		{ConnectionLowResources.String(), "low-resources"},
		{ConnectionState(9).String(), "ConnectionState(9)"},
		{OpenFlagRedirectInterrupt.String(), "redirect-interrupt"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestConnectionIDs(t *testing.T) {
	if got := ChannelConnectionID(1, 2, 0); got != 0x2001 {
		t.Errorf("channel 1 on SINT 2: %#x", got)
	}
	if got := ChannelConnectionID(0x7FF, 2, 1); got != 0x127FF {
		t.Errorf("VTL 1: %#x", got)
	}
	if InitiateContactConnectionID(VersionWin10RS31) != 4 || InitiateContactConnectionID(VersionCopper) != 4 ||
		InitiateContactConnectionID(VersionWin10RS30) != 1 || InitiateContactConnectionID(VersionV1) != 1 {
		t.Error("InitiateContact connection id")
	}
	if ValidChannelID(0) || !ValidChannelID(1) || !ValidChannelID(2047) || ValidChannelID(2048) {
		t.Error("ValidChannelID")
	}
}

func TestGUID(t *testing.T) {
	const s = "f8615163-df3e-46c5-913f-f2d2f965ed0e"
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(netWire); string(g[:]) != string(want) {
		t.Fatalf("wire order % x, want % x", g[:], want)
	}
	if g.String() != s {
		t.Fatalf("String = %s", g)
	}
	for _, in := range []string{"F8615163-DF3E-46C5-913F-F2D2F965ED0E", "{" + s + "}"} {
		if h, err := ParseGUID(in); err != nil || h != g {
			t.Errorf("ParseGUID(%q) = %v, %v", in, h, err)
		}
	}
	for _, bad := range []string{"", s[:35], s + "0", "f8615163-df3e-46c5-913f_f2d2f965ed0e",
		"g8615163-df3e-46c5-913f-f2d2f965ed0e", "{" + s, "f8615163df3e46c5913ff2d2f965ed0e"} {
		if _, err := ParseGUID(bad); !errors.Is(err, ErrBadGUID) {
			t.Errorf("ParseGUID(%q): %v", bad, err)
		}
	}
	txt, _ := g.MarshalText()
	var back GUID
	if err := back.UnmarshalText(txt); err != nil || back != g {
		t.Errorf("text round trip: %v %v", back, err)
	}
	if !(GUID{}).IsZero() || g.IsZero() {
		t.Error("IsZero")
	}
}

func TestUserDefinedText(t *testing.T) {
	u := userData()
	txt, _ := u.MarshalText()
	var back UserDefined
	if err := back.UnmarshalText(txt); err != nil || back != u {
		t.Fatalf("round trip: %v", err)
	}
	if err := back.UnmarshalText([]byte("0102")); err != nil || back[1] != 2 || back[2] != 0 {
		t.Fatalf("short text: %v", err)
	}
	if (UserDefined{1, 2}).String() != "0102" {
		t.Error("String")
	}
}
