package savedstate

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestSupportText round-trips a Support through its text form, with and
// without names, and checks what the reader tells from it.
func TestSupportText(t *testing.T) {
	s := Support{Formats: []uint16{1, 2}, Kinds: []Kind{1, 2, 5, 0x100, 0x203}}
	for _, names := range []bool{false, true} {
		text := s.AppendText(nil, names)
		got, err := ParseSupport(text)
		if err != nil {
			t.Fatalf("names %v: %v\n%s", names, err, text)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("names %v: %+v, want %+v", names, got, s)
		}
	}
	if !s.ReadsFormat(2) || s.ReadsFormat(3) || !s.Reads(5) || s.Reads(6) || !s.Reads(KindBegin) || !s.Reads(KindEnd) {
		t.Fatal("Reads or ReadsFormat wrong")
	}
	if m := s.Missing([]Kind{1, 3, 5, 0x204, KindEnd}); !slices.Equal(m, []Kind{3, 0x204}) {
		t.Fatalf("missing %v", m)
	}
	// A later release may say more: lines of another first word are
	// skipped.
	got, err := ParseSupport([]byte("format 1\nkind 0x0001\nrecords 3\n\nkind 0x0002 x y\n"))
	if err != nil || !slices.Equal(got.Kinds, []Kind{1, 2}) {
		t.Fatalf("%+v %v", got, err)
	}
}

// TestSupported lists this program's registered kinds and format 1.
// supportKindOnce registers TestSupported's kind once per process: the
// registry refuses a kind twice, and -count runs the test again.
var supportKindOnce sync.Once

func TestSupported(t *testing.T) {
	const k Kind = 0x7E01 // a kind no layer uses

	supportKindOnce.Do(func() { RegisterKind(k, KindInfo{Name: "support-test"}) })
	s := Supported()
	if !slices.Equal(s.Formats, []uint16{FormatVersion}) || !s.Reads(k) || !slices.IsSorted(s.Kinds) {
		t.Fatalf("%+v", s)
	}
	if !strings.Contains(string(s.AppendText(nil, true)), "kind 0x7e01 support-test\n") {
		t.Fatalf("%s", s.AppendText(nil, true))
	}
}

// TestParseSupportRejects names what the reader refuses.
func TestParseSupportRejects(t *testing.T) {
	for _, text := range []string{
		"",
		"kind 0x0001\n",
		"format\n",
		"format 0\n",
		"format 2 1\n",
		"format 1 1\n",
		"format 65536\n",
		"format x\n",
		"format 1\nkind 1\n",
		"format 1\nkind 0x1\n",
		"format 1\nkind 0xzzzz\n",
		"format 1\nkind 0x0002\nkind 0x0001\n",
		"format 1\nkind 0x0001\nkind 0x0001\n",
		"format 1\nkind 0xff01\n",
		"format 1\nkind\n",
		"format 1\nkind +0x001\n",
		"format 1 " + strings.Repeat("1 ", 20) + "\n",
		"format 1\n" + strings.Repeat(" ", maxSupportText),
	} {
		if s, err := ParseSupport([]byte(text)); err == nil || s.Formats != nil || s.Kinds != nil {
			t.Errorf("%.40q: %+v, %v", text, s, err)
		}
	}
}

// FuzzParseSupport: the reader never panics, an error gives nothing, and
// what it accepts is well-formed and reads back the same from its own
// text form.
func FuzzParseSupport(f *testing.F) {
	f.Add([]byte("format 1\nkind 0x0001 channel-info\nkind 0x0005 channel-restart\n"))
	f.Add([]byte("format 1 2\n\nlater 7\nkind 0x0203\n"))
	f.Add([]byte("format 1\nkind 0xff01\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		s, err := ParseSupport(text)
		if err != nil {
			if s.Formats != nil || s.Kinds != nil {
				t.Fatalf("error %v with %+v", err, s)
			}
			return
		}
		if len(s.Formats) == 0 || !slices.IsSorted(s.Formats) || !slices.IsSorted(s.Kinds) || len(s.Kinds) > maxSupportKinds {
			t.Fatalf("accepted %+v", s)
		}
		for _, k := range s.Kinds {
			if k >= KindBegin {
				t.Fatalf("accepted kind %#x", k)
			}
		}
		again, err := ParseSupport(s.AppendText(nil, false))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("%+v reads back as %+v, %v", s, again, err)
		}
	})
}
