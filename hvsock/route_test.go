package hvsock

import (
	"errors"
	"testing"
)

// TestParseRoute: the forms a relay flag takes, and what is refused.
func TestParseRoute(t *testing.T) {
	r, err := ParseRoute("5000=unix:/run/x.sock")
	if err != nil || r.Service != ServiceForPort(5000) || r.Network != "unix" || r.Address != "/run/x.sock" {
		t.Errorf("port route: %+v, %v", r, err)
	}
	r, err = ParseRoute("0000138a-facb-11e6-bd58-64006a7986d3=tcp:127.0.0.1:80")
	if err != nil || r.Service != ServiceForPort(5002) || r.Network != "tcp" || r.Address != "127.0.0.1:80" {
		t.Errorf("GUID route: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "5000", "5000=", "5000=udp:x", "5000=unix:", "x=unix:/a", "-1=tcp:a:1", "4294967296=tcp:a:1"} {
		if _, err := ParseRoute(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
}

// FuzzParseRoute: any input parses or fails with ErrSyntax, and what
// parses reads back the same from its String.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"5000=unix:/run/x.sock", "00001388-facb-11e6-bd58-64006a7986d3=tcp:[::1]:80", "=", "5000=tcp:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoute(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("%q: %v, not ErrSyntax", s, err)
			}
			return
		}
		again, err := ParseRoute(r.String())
		if err != nil || again != r {
			t.Fatalf("%q: %+v reads back as %+v, %v", s, r, again, err)
		}
	})
}
